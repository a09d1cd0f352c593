//! The unblocked types: F32, F16 and BF16, one value per weight, any row length.

use super::format::Format;
use super::simd::{bf16_to_f32, f16_to_f32, u16_at, Simd};

/// A float type read 16 values at a time.
trait Float: Format {
    /// The 16 values at the start of `b`.
    fn wide<S: Simd>(b: &[u8]) -> S;
}

/// `x · row` for a row of `F`'s values: 16 lanes at a time, then a tail.
#[inline(always)]
fn dot_values<F: Float, S: Simd>(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = S::zero();
    for (b, xs) in row.chunks_exact(16 * F::BYTES).zip(x.chunks_exact(16)) {
        acc = F::wide::<S>(b).madd(S::load(xs), acc);
    }
    let mut w = [0f32];
    let done = x.len() / 16 * 16;
    let mut tail = 0.0;
    for (b, xv) in row[done * F::BYTES..]
        .chunks_exact(F::BYTES)
        .zip(&x[done..])
    {
        F::decode_block::<S>(b, &mut w);
        tail = S::madd1(*xv, w[0], tail);
    }
    acc.sum() + tail
}

/// Decodes `blocks` of `F`'s values: 16 at a time, the rest one by one.
#[inline(always)]
fn decode_values<F: Float, S: Simd>(blocks: &[u8], out: &mut [f32]) {
    for (b, y) in blocks
        .chunks_exact(16 * F::BYTES)
        .zip(out.chunks_exact_mut(16))
    {
        F::wide::<S>(b).store(y);
    }
    let done = out.len() / 16 * 16;
    for (b, y) in blocks[done * F::BYTES..]
        .chunks_exact(F::BYTES)
        .zip(&mut out[done..])
    {
        F::decode_block::<S>(b, std::slice::from_mut(y));
    }
}

/// f32, little-endian.
pub(crate) struct F32;

impl Float for F32 {
    #[inline(always)]
    fn wide<S: Simd>(b: &[u8]) -> S {
        f32x16(b)
    }
}

/// 16 little-endian f32 values.
#[inline(always)]
fn f32x16<S: Simd>(b: &[u8]) -> S {
    let mut v = [0f32; 16];
    for (j, x) in v.iter_mut().enumerate() {
        *x = f32::from_le_bytes([b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]]);
    }
    S::load(&v)
}

impl Format for F32 {
    const BLOCK: usize = 1;
    const BYTES: usize = 4;

    #[inline(always)]
    fn dot_row<S: Simd>(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
        dot_values::<Self, S>(row, x)
    }

    #[inline(always)]
    fn decode<S: Simd>(blocks: &[u8], out: &mut [f32]) {
        decode_values::<Self, S>(blocks, out)
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// IEEE half precision, little-endian.
pub(crate) struct F16;

impl Float for F16 {
    #[inline(always)]
    fn wide<S: Simd>(b: &[u8]) -> S {
        S::from_f16(b)
    }
}

impl Format for F16 {
    const BLOCK: usize = 1;
    const BYTES: usize = 2;

    #[inline(always)]
    fn dot_row<S: Simd>(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
        dot_values::<Self, S>(row, x)
    }

    #[inline(always)]
    fn decode<S: Simd>(blocks: &[u8], out: &mut [f32]) {
        decode_values::<Self, S>(blocks, out)
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        y[0] = f16_to_f32(u16_at(b, 0));
    }
}

/// bfloat16, little-endian.
pub(crate) struct BF16;

impl Float for BF16 {
    #[inline(always)]
    fn wide<S: Simd>(b: &[u8]) -> S {
        S::from_bf16(b)
    }
}

impl Format for BF16 {
    const BLOCK: usize = 1;
    const BYTES: usize = 2;

    #[inline(always)]
    fn dot_row<S: Simd>(row: &[u8], x: &[f32], _: &[f32]) -> f32 {
        dot_values::<Self, S>(row, x)
    }

    #[inline(always)]
    fn decode<S: Simd>(blocks: &[u8], out: &mut [f32]) {
        decode_values::<Self, S>(blocks, out)
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        y[0] = bf16_to_f32(u16_at(b, 0));
    }
}
