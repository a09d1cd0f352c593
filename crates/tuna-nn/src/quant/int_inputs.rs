//! Input rows as 16-bit integers per block of 32, for the integer dot products (`vnni.rs`).
//!
//! Each block of an input row is scaled so that its largest magnitude is `LIMIT` and
//! rounded: `x ≈ scale * q`, `|q| <= 32639`, a relative error of about 1.5e-5 of the
//! block's largest value (llama.cpp rounds inputs to 8 bits, 2e-3, which would move a
//! product by far more than the 1e-4 these kernels keep to). Each `q` is held as two signed
//! bytes, `q = 256 hi + lo`, because the instruction multiplies bytes: a block is its 32 `hi`
//! then its 32 `lo`. The weights' offset `c` multiplies the sum of the rounded values
//! (`scale * Σ q`), not of the f32 ones: the offset then cancels against the rounded
//! inputs exactly as against the f32 ones, and the error follows the weights themselves
//! (with the f32 sum, a Q4_0 or Q4_1 product's error follows its largest weights: 10x
//! more).
//!
//! Rounded with AVX-512: the integer products run only where the CPU has it. A block
//! holding an infinity or NaN gets a NaN scale, so its products are NaN, as the
//! f32 kernels' are.

use std::arch::x86_64::*;

/// The largest `|q|`: `hi = (q + 128) >> 8` then stays within a signed byte.
const LIMIT: f32 = 32639.0;

/// `m` input rows of `blocks` blocks as bytes, scales and sums.
pub(crate) struct IntInputs {
    /// Blocks of 32 values per row.
    pub(crate) blocks: usize,
    /// Per row, per block: 32 `hi` then 32 `lo` bytes.
    pub(crate) bytes: Vec<i8>,
    /// Per row, per block: the scale.
    pub(crate) scales: Vec<f32>,
    /// Per row, per block: the sum of the rounded values, `scale * Σ q`.
    pub(crate) sums: Vec<f32>,
}

impl IntInputs {
    /// `x` (`m` rows of whole blocks of 32) rounded block by block.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    pub(crate) unsafe fn new(x: &[f32], m: usize) -> Self {
        let blocks = x.len() / m.max(1) / 32;
        let mut bytes = vec![0i8; x.len() * 2];
        let mut scales = Vec::with_capacity(x.len() / 32);
        let mut sums = Vec::with_capacity(x.len() / 32);
        for (block, out) in x.chunks_exact(32).zip(bytes.chunks_exact_mut(64)) {
            // SAFETY: the caller guarantees AVX-512 F and BW.
            let (scale, total) = unsafe { round_block(block, out) };
            scales.push(scale);
            sums.push(scale * total as f32);
        }
        Self {
            blocks,
            bytes,
            scales,
            sums,
        }
    }
}

/// Rounds one block into `out` (32 `hi`, 32 `lo`, to nearest, ties to even); returns its
/// scale and `Σ q`. Unsafe: the CPU must have AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn round_block(x: &[f32], out: &mut [i8]) -> (f32, i32) {
    let (a, b) = (
        _mm512_loadu_ps(x.as_ptr()),
        _mm512_loadu_ps(x[16..].as_ptr()),
    );
    let unordered = _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
    let top = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    if unordered != 0 || !top.is_finite() {
        return (f32::NAN, 0);
    }
    let inv = LIMIT / top;
    if !inv.is_finite() {
        // Zero, or all below 1e-34 (the scale's inverse overflows): rounded to zero.
        return (0.0, 0);
    }
    let (lim, neg) = (
        _mm512_set1_epi32(LIMIT as i32),
        _mm512_set1_epi32(-(LIMIT as i32)),
    );
    let mut total = _mm512_setzero_si512();
    for (half, v) in [a, b].into_iter().enumerate() {
        let q = _mm512_cvtps_epi32(_mm512_mul_ps(v, _mm512_set1_ps(inv)));
        let q = _mm512_max_epi32(_mm512_min_epi32(q, lim), neg);
        let upper = _mm512_srai_epi32(_mm512_add_epi32(q, _mm512_set1_epi32(128)), 8);
        let lower = _mm512_sub_epi32(q, _mm512_slli_epi32(upper, 8));
        let at = out.as_mut_ptr().add(16 * half);
        _mm_storeu_si128(at as *mut __m128i, _mm512_cvtepi32_epi8(upper));
        _mm_storeu_si128(at.add(32) as *mut __m128i, _mm512_cvtepi32_epi8(lower));
        total = _mm512_add_epi32(total, q);
    }
    (top / LIMIT, _mm512_reduce_add_epi32(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value is within 1.6e-5 of its block's largest as `scale * (256 hi + lo)`; a zero
    /// block (or one of values too small to scale) has scale 0; a block with a NaN or an
    /// infinity has a NaN scale.
    #[test]
    fn blocks_round_to_sixteen_bits() {
        if !crate::quant::Isa::Avx512.supported() {
            return;
        }
        let mut x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37)
            .collect();
        x[10] = 1e4;
        x[32..64].fill(0.0);
        let mut y = x.clone();
        y[70] = f32::INFINITY;
        // SAFETY: checked above.
        let xi = unsafe { IntInputs::new(&x, 1) };
        assert_eq!((xi.blocks, xi.sums.len()), (3, 3));
        for b in [0, 2] {
            let block = &x[32 * b..32 * b + 32];
            let top = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            let (hi, lo) = xi.bytes[64 * b..64 * b + 64].split_at(32);
            for (t, v) in block.iter().enumerate() {
                let q = 256 * hi[t] as i32 + lo[t] as i32;
                let back = xi.scales[b] * q as f32;
                assert!((back - v).abs() <= 1.6e-5 * top, "block {b} value {t}");
            }
        }
        let total: i32 = (0..32)
            .map(|t| 256 * xi.bytes[t] as i32 + xi.bytes[32 + t] as i32)
            .sum();
        assert_eq!(xi.sums[0], xi.scales[0] * total as f32);
        assert_eq!((xi.scales[1], xi.sums[1]), (0.0, 0.0));
        assert!(unsafe { IntInputs::new(&y, 1) }.scales[2].is_nan());
        let tiny = [1e-38f32; 32];
        let t = unsafe { IntInputs::new(&tiny, 1) };
        assert_eq!(
            (t.scales[0], t.sums[0]),
            (0.0, 0.0),
            "values below 1e-34 round to zero"
        );
    }
}
