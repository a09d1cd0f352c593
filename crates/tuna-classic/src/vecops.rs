//! The few dense vector kernels the solvers need, written so the compiler vectorises them
//! (four independent accumulators) while the summation order stays fixed and reproducible.

/// `a . b` (lengths must match).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `w . x` for `f32` data against `f64` weights: each `x` is widened exactly, so this equals
/// `dot(w, x as f64)` bit for bit while reading half the memory.
#[inline]
pub(crate) fn dot_f32(w: &[f64], x: &[f32]) -> f64 {
    debug_assert_eq!(w.len(), x.len());
    let mut acc = [0.0f64; 4];
    let (cw, cx) = (w.chunks_exact(4), x.chunks_exact(4));
    let (rw, rx) = (cw.remainder(), cx.remainder());
    for (a, b) in cw.zip(cx) {
        for k in 0..4 {
            acc[k] += a[k] * b[k] as f64;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (a, b) in rw.iter().zip(rx) {
        s += a * *b as f64;
    }
    s
}

/// `y += alpha * x` for `f32` data `x` (widened exactly, as [`dot_f32`]).
#[inline]
pub(crate) fn axpy_f32(alpha: f64, x: &[f32], y: &mut [f64]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * *xi as f64;
    }
}

/// `y += alpha * x` (lengths must match).
#[inline]
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Largest absolute value (0 for an empty slice).
pub(crate) fn inf_norm(a: &[f64]) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Index of the largest value; the first one wins ties (0 for an empty slice).
pub(crate) fn argmax<T: PartialOrd + Copy>(a: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in a.iter().enumerate() {
        if v > a[best] {
            best = i;
        }
    }
    best
}

/// Converts `f32` rows to `f64` once, so the solvers work in double precision.
pub(crate) fn to_f64(data: &[f32]) -> Vec<f64> {
    data.iter().map(|&v| v as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels() {
        let a: Vec<f64> = (1..=7).map(|v| v as f64).collect();
        let b = vec![1.0; 7];
        assert_eq!(dot(&a, &b), 28.0);
        let mut y = vec![1.0; 7];
        axpy(2.0, &a, &mut y);
        assert_eq!(y[6], 15.0);
        assert_eq!(inf_norm(&[-3.0, 2.0]), 3.0);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        let x32: Vec<f32> = (1..=7).map(|v| v as f32 * 0.1).collect();
        assert_eq!(dot_f32(&a, &x32), dot(&a, &to_f64(&x32)));
        let (mut y1, mut y2) = (a.clone(), a.clone());
        axpy_f32(0.3, &x32, &mut y1);
        axpy(0.3, &to_f64(&x32), &mut y2);
        assert_eq!(y1, y2);
    }
}
