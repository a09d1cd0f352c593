//! A vectorisable exp for arguments at or below zero, and the softmax of one row built on it.
//!
//! libm's `expf` is a scalar call per element, a few percent of a MiniLM training step inside
//! attention alone. Here exp is a branch-free polynomial, so the loops vectorise; the copy
//! compiled for AVX-512 or AVX2+FMA is chosen when the binary runs ([`Simd::detect`]).

/// The widest vector instructions this CPU has, of those the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    Avx512,
    Avx2,
    Portable,
}

impl Simd {
    /// Checked once per call site; `is_x86_feature_detected!` caches its answer.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
                return Simd::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }
}

/// exp(x) for x <= 0: 2^n p(r) with Cody-Waite reduction, relative error below 3e-7 (2 ulp); 0 below
/// -87 (where f32 would turn subnormal) and NaN for NaN.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    // A comparison, not `max`, so that NaN stays NaN.
    let c = if x < -87.0 { -87.0 } else { x };
    // Round c / ln 2 to the nearest integer with the 1.5 * 2^23 trick (no libm call): `big`
    // holds n in its low mantissa bits, so 2^n is built with integer operations only (a
    // float-to-int cast would not vectorise: Rust's `as` saturates and maps NaN to 0).
    let big = c * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = big - 12_582_912.0;
    let r = c - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67 + r * (0.041_666_5 + r * (0.008_333_5 + r * 0.001_388_9)))));
    // big's bits are 0x4B40_0000 + n for |n| < 2^22; (n + 127) << 23 is 2^n's.
    let y = p * f32::from_bits(big.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    if x < -87.0 {
        0.0
    } else {
        y
    }
}

/// Lanes of the partial maxima and sums: wide enough for AVX-512, so the reductions vectorise.
pub(crate) const LANES: usize = 16;

/// The lanes combined by `op` in halves (8 with 8, then 4 with 4, ...): four vector steps
/// where a left-to-right fold is 16 dependent scalar steps, which for rows of 128 (attention)
/// or 384 (the norms) took as long as the row's own loop.
#[inline(always)]
fn halves(mut l: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            l[i] = op(l[i], l[i + w]);
        }
        w /= 2;
    }
    l[0]
}

/// The sum of the lanes, added in halves.
#[inline(always)]
pub(crate) fn sum_lanes(l: [f32; LANES]) -> f32 {
    halves(l, |a, b| a + b)
}

/// The largest of the lanes (NaN lanes skipped), in halves.
#[inline(always)]
fn max_lanes(l: [f32; LANES]) -> f32 {
    halves(l, f32::max)
}

/// The largest entry of `row` (NaN entries are skipped; -inf for an empty row).
#[inline(always)]
fn max_loop(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    chunks
        .remainder()
        .iter()
        .copied()
        .fold(max_lanes(lanes), f32::max)
}

/// Each v of `row` replaced by exp(v - max); returns the sum of the new values and the sum of
/// each new value times its old one.
#[inline(always)]
fn exp_sums_loop(row: &mut [f32], max: f32) -> (f32, f32) {
    let (mut sums, mut weighted) = ([0f32; LANES], [0f32; LANES]);
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for ((s, w), v) in sums.iter_mut().zip(weighted.iter_mut()).zip(c.iter_mut()) {
            let e = exp_neg(*v - max);
            *w += e * *v;
            *s += e;
            *v = e;
        }
    }
    let (mut sum, mut wsum) = (sum_lanes(sums), sum_lanes(weighted));
    for v in chunks.into_remainder() {
        let e = exp_neg(*v - max);
        wsum += e * *v;
        sum += e;
        *v = e;
    }
    (sum, wsum)
}

/// Each v of `row` replaced by exp(v - max); returns the sum of the new values.
#[inline(always)]
fn exp_sum_loop(row: &mut [f32], max: f32) -> f32 {
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, v) in sums.iter_mut().zip(c.iter_mut()) {
            *v = exp_neg(*v - max);
            *s += *v;
        }
    }
    let mut sum = sum_lanes(sums);
    for v in chunks.into_remainder() {
        *v = exp_neg(*v - max);
        sum += *v;
    }
    sum
}

#[inline(always)]
pub(crate) fn softmax_loop(rows: &mut [f32], d: usize) {
    for row in rows.chunks_mut(d.max(1)) {
        let sum = exp_sum_loop(row, max_loop(row));
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Compiles `$body` (calls of `#[inline(always)]` loops) once per instruction set and runs the
/// copy `$simd` names.
macro_rules! dispatch {
    ($simd:expr, $ret:ty, |$($a:ident: $t:ty),*| $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
        unsafe fn avx512($($a: $t),*) -> $ret {
            $body
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($a: $t),*) -> $ret {
            $body
        }
        fn portable($($a: $t),*) -> $ret {
            $body
        }
        match $simd {
            // SAFETY: `Simd::detect` found these features on this CPU.
            #[cfg(target_arch = "x86_64")]
            $crate::fast_exp::Simd::Avx512 => unsafe { avx512($($a),*) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            $crate::fast_exp::Simd::Avx2 => unsafe { avx2($($a),*) },
            _ => portable($($a),*),
        }
    }};
}
pub(crate) use dispatch;

/// Each `d`-long row of `rows` replaced by its softmax, with the kernel for `simd`.
pub fn softmax_rows(rows: &mut [f32], d: usize, simd: Simd) {
    dispatch!(simd, (), |rows: &mut [f32], d: usize| softmax_loop(rows, d))
}

/// Each v of `row` replaced by exp(v - max(row)); returns (max, sum of the new values, sum of
/// each new value times its old one): a log-sum-exp and an entropy in one pass after the max.
pub fn exp_shifted(row: &mut [f32], simd: Simd) -> (f32, f32, f32) {
    dispatch!(simd, (f32, f32, f32), |row: &mut [f32]| {
        let max = max_loop(row);
        let (s, w) = exp_sums_loop(row, max);
        (max, s, w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_matches_libm_and_keeps_nan() {
        let mut worst = 0f32;
        for i in 0..87_000 {
            let x = -(i as f32) * 1e-3;
            let rel = (exp_neg(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_neg(-100.0), 0.0);
        assert_eq!(exp_neg(f32::NEG_INFINITY), 0.0);
        assert!(exp_neg(f32::NAN).is_nan());
    }

    /// Every kernel this CPU can run against the libm softmax, on rows shorter and longer
    /// than the lanes, with a -inf (masked) entry and a NaN row.
    #[test]
    fn every_kernel_matches_the_plain_softmax() {
        let mut kernels = vec![Simd::Portable];
        if Simd::detect() != Simd::Portable {
            kernels.push(Simd::Avx2);
        }
        if Simd::detect() == Simd::Avx512 {
            kernels.push(Simd::Avx512);
        }
        for d in [1, 7, 16, 37, 128] {
            let x: Vec<f32> = (0..3 * d)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7)
                .collect();
            let mut x = x;
            if d > 1 {
                x[1] = f32::NEG_INFINITY;
            }
            let want: Vec<f32> = x
                .chunks(d)
                .flat_map(|r| {
                    let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let s: f32 = r.iter().map(|v| (v - m).exp()).sum();
                    r.iter().map(move |v| (v - m).exp() / s).collect::<Vec<_>>()
                })
                .collect();
            for &k in &kernels {
                let mut got = x.clone();
                softmax_rows(&mut got, d, k);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-6 * w.max(1e-3),
                        "{k:?} d {d}: {g} vs {w}"
                    );
                }
            }
        }
        let mut nan = vec![0.5, f32::NAN, 1.0];
        softmax_rows(&mut nan, 3, Simd::detect());
        assert!(nan.iter().all(|v| v.is_nan()));
    }
}
