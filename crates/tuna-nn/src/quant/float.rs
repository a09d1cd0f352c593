//! The unblocked types: F32, F16 and BF16, one value per weight, any row length.

use super::format::Format;
use super::lanes::{bf16_to_f32, f16_to_f32, madd, madd_lanes, sum, u16_at, Lanes};

/// `x · row` for a row of `width`-byte values that `get` reads as f32: 16 lanes, then a tail.
#[inline(always)]
fn dot_values<const FMA: bool>(
    row: &[u8],
    x: &[f32],
    width: usize,
    get: impl Fn(&[u8]) -> f32,
) -> f32 {
    let mut acc: Lanes = [0.0; 16];
    let mut chunks = row.chunks_exact(16 * width).zip(x.chunks_exact(16));
    for (b, xs) in chunks.by_ref() {
        let w: Lanes = std::array::from_fn(|j| get(&b[j * width..]));
        madd_lanes::<FMA>(&mut acc, xs, &w);
    }
    let done = x.len() / 16 * 16;
    let mut tail = 0.0;
    for (b, xv) in row[done * width..].chunks_exact(width).zip(&x[done..]) {
        tail = madd::<FMA>(*xv, get(b), tail);
    }
    sum(&acc) + tail
}

/// f32, little-endian.
pub(crate) struct F32;

/// The little-endian f32 at the start of `b`.
#[inline(always)]
fn f32_at(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Format for F32 {
    const BYTES: usize = 4;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
        dot_values::<FMA>(row, x, 4, f32_at)
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks.chunks_exact(4).zip(out) {
            *y = f32_at(b);
        }
    }
}

/// IEEE half precision, little-endian.
pub(crate) struct F16;

impl Format for F16 {
    const BYTES: usize = 2;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
        dot_values::<FMA>(row, x, 2, |b| f16_to_f32(u16_at(b, 0)))
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks.chunks_exact(2).zip(out) {
            *y = f16_to_f32(u16_at(b, 0));
        }
    }
}

/// bfloat16, little-endian.
pub(crate) struct BF16;

impl Format for BF16 {
    const BYTES: usize = 2;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
        dot_values::<FMA>(row, x, 2, |b| bf16_to_f32(u16_at(b, 0)))
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks.chunks_exact(2).zip(out) {
            *y = bf16_to_f32(u16_at(b, 0));
        }
    }
}
