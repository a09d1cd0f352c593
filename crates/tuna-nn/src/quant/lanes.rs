//! The building blocks every kernel is written in: 16 f32 lanes, a multiply-add that is fused
//! or not by a const parameter, and half-precision conversions without branches.
//!
//! Written as plain loops over fixed-size arrays so that the compiler turns each one into a
//! few vector instructions in the kernels compiled with AVX2 or AVX-512 (`kernels.rs`), and
//! into ordinary code elsewhere. The lane layout fixes the order of every sum, so the paths
//! differ only in whether a multiply and an add are rounded once (FMA) or twice.

/// Sixteen f32 partial sums or values.
pub(crate) type Lanes = [f32; 16];

/// `a * b + c`, fused (one rounding) when `FMA`.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `acc[j] += x[j] * w[j]` for the 16 lanes.
#[inline(always)]
pub(crate) fn madd_lanes<const FMA: bool>(acc: &mut Lanes, x: &[f32], w: &Lanes) {
    let x: &Lanes = x[..16].try_into().expect("16 values");
    for j in 0..16 {
        acc[j] = madd::<FMA>(x[j], w[j], acc[j]);
    }
}

/// `acc[j] += s * v[j]` for the 16 lanes.
#[inline(always)]
pub(crate) fn scale_add<const FMA: bool>(acc: &mut Lanes, s: f32, v: &Lanes) {
    for j in 0..16 {
        acc[j] = madd::<FMA>(s, v[j], acc[j]);
    }
}

/// The sum of the 16 lanes, pairwise (the same order on every path).
#[inline(always)]
pub(crate) fn sum(v: &Lanes) -> f32 {
    let mut w = *v;
    for width in [8, 4, 2, 1] {
        for j in 0..width {
            w[j] += w[j + width];
        }
    }
    w[0]
}

/// The sums of `x` over consecutive groups of 32 values (`x.len()` a multiple of 32).
pub(crate) fn sums32(x: &[f32]) -> Vec<f32> {
    x.chunks_exact(32)
        .map(|c| {
            let mut acc = [0f32; 16];
            for j in 0..16 {
                acc[j] = c[j] + c[j + 16];
            }
            sum(&acc)
        })
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
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The f16 scale stored at byte `at` of a block, as f32.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16_at(b, at))
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
        let v: Lanes = std::array::from_fn(|j| j as f32);
        assert_eq!(sum(&v), 120.0);
        let x: Vec<f32> = (0..64).map(|j| j as f32).collect();
        assert_eq!(sums32(&x), vec![496.0, 1520.0]);
        let mut acc = [1f32; 16];
        madd_lanes::<true>(&mut acc, &x, &v);
        assert_eq!(acc[3], 10.0);
        scale_add::<false>(&mut acc, 2.0, &v);
        assert_eq!(acc[3], 16.0);
    }
}
