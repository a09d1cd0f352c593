//! The vector of 16 f32 lanes every kernel is written in, and its portable implementation.
//!
//! The kernels are generic over `Simd`; `simd_x86.rs` implements it with AVX-512 (one 512-bit
//! register) and AVX2 (two 256-bit ones), and `Portable` with plain arrays. All three keep
//! the same 16 lanes and sum them in the same order, so the AVX builds give identical results
//! and the portable one differs only by its unfused multiply-adds. Also here: the exact
//! half-precision conversions, without branches.

/// 16 f32 lanes. Implementations other than `Portable` may only be used in code compiled
/// with their target features (the `#[target_feature]` builds in `kernels.rs`).
pub(crate) trait Simd: Copy {
    /// All lanes zero.
    fn zero() -> Self;
    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// `x[..16]`.
    fn load(x: &[f32]) -> Self;
    /// 16 unsigned bytes as f32.
    fn from_u8(b: &[u8; 16]) -> Self;
    /// 16 signed bytes as f32.
    fn from_i8(b: &[u8; 16]) -> Self;
    /// The low and the high nibbles of 16 bytes, as f32.
    fn from_nibbles(b: &[u8; 16]) -> (Self, Self);
    /// Four IEEE halves as f32, exactly.
    fn f16x4(h: [u16; 4]) -> [f32; 4];
    /// Asks for the cache lines of `b` ahead of their use (a hint; nothing on `Portable`).
    fn prefetch(_b: &[u8]) {}
    /// One IEEE half (its bits) as f32, exactly.
    fn f16(h: u16) -> f32;
    /// 16 little-endian IEEE halves (32 bytes) as f32.
    fn from_f16(b: &[u8]) -> Self;
    /// 16 little-endian bfloat16 values (32 bytes) as f32.
    fn from_bf16(b: &[u8]) -> Self;
    /// `self * o`.
    fn mul(self, o: Self) -> Self;
    /// `self + o`.
    fn add(self, o: Self) -> Self;
    /// `self - o`.
    fn sub(self, o: Self) -> Self;
    /// `self * b + c` (fused where the instruction set has it).
    fn madd(self, b: Self, c: Self) -> Self;
    /// `a * b + c` on scalars, fused as `madd` is.
    fn madd1(a: f32, b: f32, c: f32) -> f32;
    /// The sum of the lanes: lane j + lane j+8, then j+4, j+2, j+1.
    fn sum(self) -> f32;
    /// `sum` of each of 16 vectors (the same additions, so the same totals bit for bit);
    /// AVX-512 adds the vectors' halves two vectors at a time.
    #[inline(always)]
    fn sum16(v: [Self; 16]) -> [f32; 16] {
        let mut out = [0f32; 16];
        for (o, vi) in out.iter_mut().zip(v) {
            *o = vi.sum();
        }
        out
    }
    /// The 32 weights `d * q + c` (one rounding) of 16 bytes of 4-bit values `q`: the low
    /// nibbles, then the high ones. AVX-512 looks each one up in a table of the 16 values.
    #[inline(always)]
    fn nibble_weights(b: &[u8; 16], d: f32, c: f32) -> (Self, Self) {
        let (lo, hi) = Self::from_nibbles(b);
        let (d, c) = (Self::splat(d), Self::splat(c));
        (lo.madd(d, c), hi.madd(d, c))
    }
    /// Writes the lanes to `out[..16]`.
    fn store(self, out: &mut [f32]);
}

/// `Simd` on plain arrays, for any target (no fused multiply-add).
#[derive(Clone, Copy)]
pub(crate) struct Portable([f32; 16]);

impl Portable {
    #[inline(always)]
    fn map(f: impl Fn(usize) -> f32) -> Self {
        let mut v = [0f32; 16];
        for (j, x) in v.iter_mut().enumerate() {
            *x = f(j);
        }
        Self(v)
    }
}

impl Simd for Portable {
    #[inline(always)]
    fn zero() -> Self {
        Self([0.0; 16])
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self([v; 16])
    }
    #[inline(always)]
    fn load(x: &[f32]) -> Self {
        Self(x[..16].try_into().expect("16 values"))
    }
    #[inline(always)]
    fn from_u8(b: &[u8; 16]) -> Self {
        Self::map(|j| b[j] as f32)
    }
    #[inline(always)]
    fn from_i8(b: &[u8; 16]) -> Self {
        Self::map(|j| b[j] as i8 as f32)
    }
    #[inline(always)]
    fn from_nibbles(b: &[u8; 16]) -> (Self, Self) {
        (
            Self::map(|j| (b[j] & 15) as f32),
            Self::map(|j| (b[j] >> 4) as f32),
        )
    }
    #[inline(always)]
    fn f16x4(h: [u16; 4]) -> [f32; 4] {
        [
            f16_to_f32(h[0]),
            f16_to_f32(h[1]),
            f16_to_f32(h[2]),
            f16_to_f32(h[3]),
        ]
    }
    #[inline(always)]
    fn f16(h: u16) -> f32 {
        f16_to_f32(h)
    }
    #[inline(always)]
    fn from_f16(b: &[u8]) -> Self {
        Self::map(|j| f16_to_f32(u16_at(b, 2 * j)))
    }
    #[inline(always)]
    fn from_bf16(b: &[u8]) -> Self {
        Self::map(|j| bf16_to_f32(u16_at(b, 2 * j)))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self::map(|j| self.0[j] * o.0[j])
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self::map(|j| self.0[j] + o.0[j])
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Self::map(|j| self.0[j] - o.0[j])
    }
    #[inline(always)]
    fn madd(self, b: Self, c: Self) -> Self {
        Self::map(|j| self.0[j] * b.0[j] + c.0[j])
    }
    #[inline(always)]
    fn madd1(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        let mut w = self.0;
        for width in [8, 4, 2, 1] {
            for j in 0..width {
                w[j] += w[j + width];
            }
        }
        w[0]
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        out[..16].copy_from_slice(&self.0);
    }
}

/// The sums of `x` over consecutive groups of 32 values (`x.len()` a multiple of 32).
pub(crate) fn sums32(x: &[f32]) -> Vec<f32> {
    x.chunks_exact(32)
        .map(|c| Portable::load(c).add(Portable::load(&c[16..])).sum())
        .collect()
}

/// IEEE half-precision bits to f32, exactly (subnormals, infinities and NaN included).
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7fff;
    // The exponent and mantissa shifted into f32 position read as a number 2^112 too small
    // (a subnormal half lands on the matching f32 subnormal), so one product rebiases both.
    let scaled = f32::from_bits(em << 13) * f32::from_bits(0x7780_0000);
    let bits = if em >= 0x7c00 {
        0x7f80_0000 | ((em & 0x3ff) << 13)
    } else {
        scaled.to_bits()
    };
    f32::from_bits(bits | sign)
}

/// bfloat16 bits to f32 (exact: the upper half of an f32).
#[inline(always)]
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// The little-endian u16 at byte `at` of `b`.
#[inline(always)]
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

/// The f16 scale stored at byte `at` of a block, as f32.
#[inline(always)]
pub(crate) fn f16_at<S: Simd>(b: &[u8], at: usize) -> f32 {
    S::f16(u16_at(b, at))
}

/// The 16 bytes at `at` of `b`.
#[inline(always)]
pub(crate) fn bytes16(b: &[u8], at: usize) -> &[u8; 16] {
    b[at..at + 16].try_into().expect("16 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversions_match_the_half_crate_on_every_value() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = f16_to_f32(h);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}: {got} vs {want}"
            );
            let want = half::bf16::from_bits(h).to_f32();
            let got = bf16_to_f32(h);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
        }
    }

    #[test]
    fn lane_sums_and_group_sums() {
        let v = Portable::map(|j| j as f32);
        assert_eq!(v.sum(), 120.0);
        let x: Vec<f32> = (0..64).map(|j| j as f32).collect();
        assert_eq!(sums32(&x), vec![496.0, 1520.0]);
        let b: [u8; 16] = std::array::from_fn(|j| 250 + j as u8 % 6);
        assert_eq!(Portable::from_u8(&b).0[1], 251.0);
        assert_eq!(Portable::from_i8(&b).0[1], -5.0);
    }
}
