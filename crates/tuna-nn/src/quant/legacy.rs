//! The 32-weight block types: Q4_0, Q4_1 and Q8_0 (`block_q4_0` etc. in GGML's `ggml-common.h`).
//!
//! A block's dot product is its integer values times the inputs, in 16 lanes, scaled once by
//! the block's scale; Q4_0's offset of 8 and Q4_1's minimum multiply the sum of the block's
//! inputs, computed once per input row. The inputs stay f32 (llama.cpp rounds them to 8 bits,
//! which would move the result by far more than the 1e-4 these kernels keep to).

use super::format::{Acc, Format};
use super::rows4::{dot4, Block32};
use super::simd::{bytes16, f16_at, u16_at, Simd};

/// The low and the high nibbles of 16 bytes, minus `offset` (wrapping).
#[inline(always)]
fn nibbles(qs: &[u8; 16], offset: u8) -> ([u8; 16], [u8; 16]) {
    let (mut lo, mut hi) = ([0u8; 16], [0u8; 16]);
    for j in 0..16 {
        lo[j] = (qs[j] & 15).wrapping_sub(offset);
        hi[j] = (qs[j] >> 4).wrapping_sub(offset);
    }
    (lo, hi)
}

/// Adds `x · block` to `acc` for a block `b` of scale `d` and offset `c`, with the weights
/// and the order of `rows4` (a row outside the groups of four).
#[inline(always)]
fn dot_weights<B: Block32, S: Simd>(b: &[u8], d: f32, c: f32, x: &[f32], acc: &mut Acc<S>) {
    let w = B::block_weights::<S>(b, d, c);
    acc.lanes = B::madd_block(w, (S::load(x), S::load(&x[16..])), acc.lanes);
}

/// Four rows through `rows4::dot4` (the `Format::dot_rows4` of every type here).
macro_rules! four_rows {
    () => {
        #[inline(always)]
        fn dot_rows4<S: Simd>(rows: [&[u8]; 4], x: &[f32], sums: &[f32]) -> [f32; 4] {
            let _ = sums;
            dot4::<Self, S>(rows, x)
        }
    };
}

impl Block32 for Q4_0 {
    const OFFSET: bool = true;
    const EIGHT_INPUTS: bool = true;

    #[inline(always)]
    fn ints<S: Simd>(b: &[u8]) -> (S, S) {
        S::from_nibbles(bytes16(b, 2))
    }

    #[inline(always)]
    fn block_weights<S: Simd>(b: &[u8], d: f32, c: f32) -> (S, S) {
        S::nibble_weights(bytes16(b, 2), d, c)
    }

    #[inline(always)]
    fn offsets4<S: Simd>(_: [&[u8]; 4], d: [f32; 4]) -> [f32; 4] {
        [-8.0 * d[0], -8.0 * d[1], -8.0 * d[2], -8.0 * d[3]]
    }
}

impl Block32 for Q4_1 {
    const OFFSET: bool = true;
    const EIGHT_INPUTS: bool = true;

    #[inline(always)]
    fn ints<S: Simd>(b: &[u8]) -> (S, S) {
        S::from_nibbles(bytes16(b, 4))
    }

    #[inline(always)]
    fn block_weights<S: Simd>(b: &[u8], d: f32, c: f32) -> (S, S) {
        S::nibble_weights(bytes16(b, 4), d, c)
    }

    /// The minimums, four in one conversion.
    #[inline(always)]
    fn offsets4<S: Simd>(b: [&[u8]; 4], _: [f32; 4]) -> [f32; 4] {
        S::f16x4([
            u16_at(b[0], 2),
            u16_at(b[1], 2),
            u16_at(b[2], 2),
            u16_at(b[3], 2),
        ])
    }
}

impl Block32 for Q8_0 {
    const OFFSET: bool = false;
    const EIGHT_INPUTS: bool = false;

    #[inline(always)]
    fn ints<S: Simd>(b: &[u8]) -> (S, S) {
        (S::from_i8(bytes16(b, 2)), S::from_i8(bytes16(b, 18)))
    }

    #[inline(always)]
    fn offsets4<S: Simd>(_: [&[u8]; 4], _: [f32; 4]) -> [f32; 4] {
        [0.0; 4]
    }
}

/// Q4_0: `d` (f16), then 16 bytes of 4-bit values; weight = d * (q - 8).
pub(crate) struct Q4_0;

impl Format for Q4_0 {
    const BLOCK: usize = 32;
    const BYTES: usize = 18;
    four_rows!();

    #[inline(always)]
    fn dot_block<S: Simd>(b: &[u8], x: &[f32], _: &[f32], acc: &mut Acc<S>) {
        let d = f16_at::<S>(b, 0);
        dot_weights::<Self, S>(b, d, -8.0 * d, x, acc);
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        let d = S::splat(f16_at::<S>(b, 0));
        let (lo, hi) = nibbles(bytes16(b, 2), 8);
        S::from_i8(&lo).mul(d).store(y);
        S::from_i8(&hi).mul(d).store(&mut y[16..]);
    }
}

/// Q4_1: `d` and `m` (f16), then 16 bytes of 4-bit values; weight = d * q + m.
pub(crate) struct Q4_1;

impl Format for Q4_1 {
    const BLOCK: usize = 32;
    const BYTES: usize = 20;
    four_rows!();

    #[inline(always)]
    fn dot_block<S: Simd>(b: &[u8], x: &[f32], _: &[f32], acc: &mut Acc<S>) {
        dot_weights::<Self, S>(b, f16_at::<S>(b, 0), f16_at::<S>(b, 2), x, acc);
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        let (d, m) = (S::splat(f16_at::<S>(b, 0)), S::splat(f16_at::<S>(b, 2)));
        let (lo, hi) = nibbles(bytes16(b, 4), 0);
        S::from_u8(&lo).mul(d).add(m).store(y);
        S::from_u8(&hi).mul(d).add(m).store(&mut y[16..]);
    }
}

/// Q8_0: `d` (f16), then 32 signed bytes; weight = d * q.
pub(crate) struct Q8_0;

impl Format for Q8_0 {
    const BLOCK: usize = 32;
    const BYTES: usize = 34;
    four_rows!();

    #[inline(always)]
    fn dot_block<S: Simd>(b: &[u8], x: &[f32], _: &[f32], acc: &mut Acc<S>) {
        dot_weights::<Self, S>(b, f16_at::<S>(b, 0), 0.0, x, acc);
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        let d = S::splat(f16_at::<S>(b, 0));
        S::from_i8(bytes16(b, 2)).mul(d).store(y);
        S::from_i8(bytes16(b, 18)).mul(d).store(&mut y[16..]);
    }
}
