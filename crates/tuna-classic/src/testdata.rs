//! Small synthetic data sets for the tests, generated from a seeded [`tuna_core::Rng`].

use tuna_core::Rng;

/// `n` points in `d` dimensions from `k` well separated Gaussian blobs (centres 10 apart).
pub(crate) fn blobs(n: usize, d: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let centres: Vec<f64> = (0..k * d).map(|_| rng.normal() * 10.0).collect();
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % k;
        y.push(c);
        for j in 0..d {
            // Class c sits at +/- 10 on axis c (mod d), plus a random offset and unit noise.
            let axis = if j == c % d {
                10.0 * (1.0 + (c / d) as f64)
            } else {
                0.0
            };
            x.push((centres[c * d + j] * 0.1 + axis + rng.normal()) as f32);
        }
    }
    (x, y)
}

/// `n` points uniform in `[-1, 1]^2`, label 1 when the two coordinates have the same sign.
pub(crate) fn xor(n: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let a = rng.next_f64() * 2.0 - 1.0;
        let b = rng.next_f64() * 2.0 - 1.0;
        x.push(a as f32);
        x.push(b as f32);
        y.push(usize::from((a > 0.0) == (b > 0.0)));
    }
    (x, y)
}

/// Fraction of equal entries.
pub(crate) fn accuracy(pred: &[usize], y: &[usize]) -> f64 {
    pred.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

/// 40 points, 3 features, 3 classes, by formula (no RNG) and rounded to `f32`, as in NumPy:
///
/// ```text
/// i = np.arange(40)[:, None]; j = np.arange(3)[None, :]; y = np.arange(40) % 3
/// X = np.sin(0.9 * i + 1.7 * j) + 0.6 * np.cos(0.31 * i * (j + 1)) + 0.8 * (j == y[:, None])
/// X = X.astype(np.float32).astype(np.float64)
/// ```
pub(crate) fn reference_multiclass() -> (Vec<f32>, Vec<usize>) {
    let y: Vec<usize> = (0..40).map(|i| i % 3).collect();
    let mut x = Vec::with_capacity(120);
    for (i, &label) in y.iter().enumerate() {
        for j in 0..3 {
            let (fi, fj) = (i as f64, j as f64);
            let v = (0.9 * fi + 1.7 * fj).sin()
                + 0.6 * (0.31 * fi * (fj + 1.0)).cos()
                + if j == label { 0.8 } else { 0.0 };
            x.push(v as f32);
        }
    }
    (x, y)
}

/// 40 points, 3 features, 2 classes, by formula (no RNG) and rounded to `f32`, as in NumPy:
///
/// ```text
/// i = np.arange(40)[:, None]; j = np.arange(3)[None, :]; yb = np.arange(40) % 2
/// Xb = (np.sin(0.7 * i + 1.1 * j) + 0.5 * np.cos(0.23 * i * (j + 2))
///       + 0.9 * yb[:, None] * (j == 0) - 0.4 * yb[:, None] * (j == 2))
/// Xb = Xb.astype(np.float32).astype(np.float64)
/// ```
pub(crate) fn reference_binary() -> (Vec<f32>, Vec<usize>) {
    let y: Vec<usize> = (0..40).map(|i| i % 2).collect();
    let mut x = Vec::with_capacity(120);
    for (i, &label) in y.iter().enumerate() {
        for j in 0..3 {
            let (fi, fj, fy) = (i as f64, j as f64, label as f64);
            let v = (0.7 * fi + 1.1 * fj).sin()
                + 0.5 * (0.23 * fi * (fj + 2.0)).cos()
                + if j == 0 { 0.9 * fy } else { 0.0 }
                - if j == 2 { 0.4 * fy } else { 0.0 };
            x.push(v as f32);
        }
    }
    (x, y)
}
