//! The 32-weight block types: Q4_0, Q4_1 and Q8_0 (`block_q4_0` etc. in GGML's `ggml-common.h`).
//!
//! A block's dot product is its integer values times the inputs, in 16 lanes, scaled once by
//! the block's scale; Q4_0's offset of 8 and Q4_1's minimum multiply the sum of the block's
//! inputs, computed once per input row. The inputs stay f32 (llama.cpp rounds them to 8 bits,
//! which would move the result by far more than the 1e-4 these kernels keep to).

use super::format::{dot_blocks, Acc, Format};
use super::lanes::{f16_at, madd, madd_lanes, scale_add, Lanes};

/// The 16 low and 16 high nibbles of 16 bytes, as f32.
#[inline(always)]
fn nibbles(qs: &[u8]) -> (Lanes, Lanes) {
    let qs: &[u8; 16] = qs[..16].try_into().expect("16 bytes");
    let lo = std::array::from_fn(|j| (qs[j] & 15) as f32);
    let hi = std::array::from_fn(|j| (qs[j] >> 4) as f32);
    (lo, hi)
}

/// `x[..16] · lo + x[16..32] · hi` in 16 lanes.
#[inline(always)]
fn two_halves<const FMA: bool>(x: &[f32], lo: &Lanes, hi: &Lanes) -> Lanes {
    let mut t = [0f32; 16];
    madd_lanes::<FMA>(&mut t, &x[..16], lo);
    madd_lanes::<FMA>(&mut t, &x[16..32], hi);
    t
}

/// Q4_0: `d` (f16), then 16 bytes of 4-bit values; weight = d * (q - 8).
pub(crate) struct Q4_0;

impl Format for Q4_0 {
    const BYTES: usize = 18;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        dot_blocks(row, x, sums, (32, Self::BYTES), |b, x, s, acc: &mut Acc| {
            let d = f16_at(b, 0);
            let (lo, hi) = nibbles(&b[2..18]);
            scale_add::<FMA>(&mut acc.lanes, d, &two_halves::<FMA>(x, &lo, &hi));
            acc.corr = madd::<FMA>(-8.0 * d, s[0], acc.corr);
        })
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(32))
        {
            let d = f16_at(b, 0);
            for j in 0..16 {
                y[j] = ((b[2 + j] & 15) as i32 - 8) as f32 * d;
                y[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
            }
        }
    }
}

/// Q4_1: `d` and `m` (f16), then 16 bytes of 4-bit values; weight = d * q + m.
pub(crate) struct Q4_1;

impl Format for Q4_1 {
    const BYTES: usize = 20;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        dot_blocks(row, x, sums, (32, Self::BYTES), |b, x, s, acc: &mut Acc| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            let (lo, hi) = nibbles(&b[4..20]);
            scale_add::<FMA>(&mut acc.lanes, d, &two_halves::<FMA>(x, &lo, &hi));
            acc.corr = madd::<FMA>(m, s[0], acc.corr);
        })
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(32))
        {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                y[j] = (b[4 + j] & 15) as f32 * d + m;
                y[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
            }
        }
    }
}

/// Q8_0: `d` (f16), then 32 signed bytes; weight = d * q.
pub(crate) struct Q8_0;

impl Format for Q8_0 {
    const BYTES: usize = 34;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        dot_blocks(row, x, sums, (32, Self::BYTES), |b, x, _, acc: &mut Acc| {
            let d = f16_at(b, 0);
            let qs: &[u8; 32] = b[2..34].try_into().expect("32 bytes");
            let lo: Lanes = std::array::from_fn(|j| qs[j] as i8 as f32);
            let hi: Lanes = std::array::from_fn(|j| qs[j + 16] as i8 as f32);
            scale_add::<FMA>(&mut acc.lanes, d, &two_halves::<FMA>(x, &lo, &hi));
        })
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(32))
        {
            let d = f16_at(b, 0);
            for j in 0..32 {
                y[j] = b[2 + j] as i8 as f32 * d;
            }
        }
    }
}
