//! The 256-weight "K" block types: Q4_K, Q5_K and Q6_K (`block_q4_K` etc. in GGML's
//! `ggml-common.h`; the decoding follows `dequantize_row_q4_K` etc. in `ggml-quants.c`).
//!
//! Q4_K and Q5_K split a block into 8 groups of 32, each with a 6-bit scale and minimum
//! (packed in 12 bytes); Q6_K into 16 groups of 16 with signed 8-bit scales. As for the
//! 32-weight types, each group's integer values meet the f32 inputs in 16 lanes and are scaled
//! once; the minimums multiply the sums of the group's inputs.

use super::format::{Acc, Format};
use super::simd::{bytes16, f16_at, Simd};

/// The `j`-th 6-bit (scale, minimum) pair of Q4_K and Q5_K's 12 packed bytes
/// (`get_scale_min_k4`).
#[inline(always)]
fn scale_min(j: usize, q: &[u8]) -> (f32, f32) {
    let (d, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    };
    (d as f32, m as f32)
}

/// The 32 values of Q4_K/Q5_K's group `g` as two halves of 16 bytes (chunk `g / 2`, its low
/// nibbles for even `g`, high for odd), each plus 16 where Q5_K's high-bit bytes `qh` (if
/// any) have bit `g` set.
#[inline(always)]
fn group_values(ql: &[u8], qh: Option<&[u8]>, g: usize) -> [[u8; 16]; 2] {
    let mut v = [[0u8; 16]; 2];
    for (h, half) in v.iter_mut().enumerate() {
        let q = bytes16(ql, 32 * (g / 2) + 16 * h);
        for j in 0..16 {
            half[j] = if g.is_multiple_of(2) {
                q[j] & 15
            } else {
                q[j] >> 4
            };
        }
        if let Some(qh) = qh {
            let bits = bytes16(qh, 16 * h);
            for j in 0..16 {
                half[j] |= if bits[j] & (1 << g) != 0 { 16 } else { 0 };
            }
        }
    }
    v
}

/// The high-bit bytes (Q5_K only) and the 4-bit values of a Q4_K or Q5_K block.
#[inline(always)]
fn k4_parts(b: &[u8], five: bool) -> (Option<&[u8]>, &[u8]) {
    if five {
        (Some(&b[16..48]), &b[48..176])
    } else {
        (None, &b[16..144])
    }
}

/// Adds `scale * t` to the even or odd lanes of `acc` (by `G`'s parity).
#[inline(always)]
fn add_group<S: Simd, const G: usize>(acc: &mut Acc<S>, scale: f32, t: S) {
    if G.is_multiple_of(2) {
        acc.lanes = S::splat(scale).madd(t, acc.lanes);
    } else {
        acc.lanes2 = S::splat(scale).madd(t, acc.lanes2);
    }
}

/// Group `G` (0..8) of a Q4_K or Q5_K block's dot product; `d`, `dmin` the block's scales.
#[inline(always)]
fn dot_k4_group<S: Simd, const G: usize>(
    b: &[u8],
    x: &[f32],
    (s, d, dmin): (&[f32], f32, f32),
    acc: &mut Acc<S>,
    five: bool,
) {
    let (qh, ql) = k4_parts(b, five);
    let (sc, m) = scale_min(G, &b[4..16]);
    let x = &x[32 * G..];
    let (lo, hi) = if five {
        let [lo, hi] = group_values(ql, qh, G);
        (S::from_u8(&lo), S::from_u8(&hi))
    } else {
        let (q0, q1) = S::from_nibbles(bytes16(ql, 32 * (G / 2)));
        let (p0, p1) = S::from_nibbles(bytes16(ql, 32 * (G / 2) + 16));
        if G.is_multiple_of(2) {
            (q0, p0)
        } else {
            (q1, p1)
        }
    };
    let t = hi.madd(S::load(&x[16..]), lo.mul(S::load(x)));
    add_group::<S, G>(acc, d * sc, t);
    acc.corr = S::madd1(-(dmin * m), s[G], acc.corr);
}

/// Q4_K and Q5_K's dot product of one block, its 8 groups unrolled.
#[inline(always)]
fn dot_k4<S: Simd>(b: &[u8], x: &[f32], s: &[f32], acc: &mut Acc<S>, five: bool) {
    let k = (s, f16_at::<S>(b, 0), f16_at::<S>(b, 2));
    dot_k4_group::<S, 0>(b, x, k, acc, five);
    dot_k4_group::<S, 1>(b, x, k, acc, five);
    dot_k4_group::<S, 2>(b, x, k, acc, five);
    dot_k4_group::<S, 3>(b, x, k, acc, five);
    dot_k4_group::<S, 4>(b, x, k, acc, five);
    dot_k4_group::<S, 5>(b, x, k, acc, five);
    dot_k4_group::<S, 6>(b, x, k, acc, five);
    dot_k4_group::<S, 7>(b, x, k, acc, five);
}

/// Q4_K and Q5_K's decoding of one block, in GGML's order of operations.
#[inline(always)]
fn decode_k4<S: Simd>(b: &[u8], y: &mut [f32], five: bool) {
    let (d, dmin) = (f16_at::<S>(b, 0), f16_at::<S>(b, 2));
    let (qh, ql) = k4_parts(b, five);
    for g in 0..8 {
        let (sc, m) = scale_min(g, &b[4..16]);
        let (d1, m1) = (S::splat(d * sc), S::splat(dmin * m));
        let [lo, hi] = group_values(ql, qh, g);
        S::from_u8(&lo).mul(d1).sub(m1).store(&mut y[32 * g..]);
        S::from_u8(&hi).mul(d1).sub(m1).store(&mut y[32 * g + 16..]);
    }
}

/// Q4_K: `d`, `dmin` (f16), 12 bytes of scales and minimums, 128 bytes of 4-bit values.
pub(crate) struct Q4K;

impl Format for Q4K {
    const BLOCK: usize = 256;
    const BYTES: usize = 144;

    #[inline(always)]
    fn dot_block<S: Simd>(b: &[u8], x: &[f32], s: &[f32], acc: &mut Acc<S>) {
        dot_k4(b, x, s, acc, false)
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        decode_k4::<S>(b, y, false)
    }
}

/// Q5_K: as Q4_K with 32 bytes of fifth bits (`qh`) before the 4-bit values.
pub(crate) struct Q5K;

impl Format for Q5K {
    const BLOCK: usize = 256;
    const BYTES: usize = 176;

    #[inline(always)]
    fn dot_block<S: Simd>(b: &[u8], x: &[f32], s: &[f32], acc: &mut Acc<S>) {
        dot_k4(b, x, s, acc, true)
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        decode_k4::<S>(b, y, true)
    }
}

/// Q6_K's 16 signed values (q - 32, as bytes) of group `g` (0..16) and the group's scale.
#[inline(always)]
fn q6_group(b: &[u8], g: usize) -> ([u8; 16], f32) {
    // Each 128-weight half `n` has 64 `ql` bytes and 32 `qh` bytes; within it, quarter `q`
    // (32 weights) takes the low (q < 2) or high nibbles of ql[32 * (q % 2)..] and bits
    // 2q..2q+2 of qh; `h` picks the first or second 16 of the quarter.
    let (n, q, h) = (g / 8, (g / 2) % 4, g % 2);
    let ql = bytes16(b, 64 * n + 32 * (q % 2) + 16 * h);
    let qh = bytes16(b, 128 + 32 * n + 16 * h);
    let mut v = [0u8; 16];
    for j in 0..16 {
        let lo = if q < 2 { ql[j] & 15 } else { ql[j] >> 4 };
        let hi = ((qh[j] >> (2 * q)) & 3) << 4;
        v[j] = (lo | hi).wrapping_sub(32);
    }
    (v, (b[192 + 8 * n + 2 * q + h] as i8) as f32)
}

/// Group `G` (0..16) of a Q6_K block's dot product; `d` the block's scale.
#[inline(always)]
fn q6_dot<S: Simd, const G: usize>(b: &[u8], x: &[f32], d: f32, acc: &mut Acc<S>) {
    let (v, sc) = q6_group(b, G);
    let t = S::from_i8(&v).mul(S::load(&x[16 * G..]));
    add_group::<S, G>(acc, d * sc, t);
}

/// Q6_K: 128 bytes of low 4 bits, 64 of high 2 bits, 16 signed scales, `d` (f16).
pub(crate) struct Q6K;

impl Format for Q6K {
    const BLOCK: usize = 256;
    const BYTES: usize = 210;

    #[inline(always)]
    fn dot_block<S: Simd>(b: &[u8], x: &[f32], _: &[f32], acc: &mut Acc<S>) {
        let d = f16_at::<S>(b, 208);
        q6_dot::<S, 0>(b, x, d, acc);
        q6_dot::<S, 1>(b, x, d, acc);
        q6_dot::<S, 2>(b, x, d, acc);
        q6_dot::<S, 3>(b, x, d, acc);
        q6_dot::<S, 4>(b, x, d, acc);
        q6_dot::<S, 5>(b, x, d, acc);
        q6_dot::<S, 6>(b, x, d, acc);
        q6_dot::<S, 7>(b, x, d, acc);
        q6_dot::<S, 8>(b, x, d, acc);
        q6_dot::<S, 9>(b, x, d, acc);
        q6_dot::<S, 10>(b, x, d, acc);
        q6_dot::<S, 11>(b, x, d, acc);
        q6_dot::<S, 12>(b, x, d, acc);
        q6_dot::<S, 13>(b, x, d, acc);
        q6_dot::<S, 14>(b, x, d, acc);
        q6_dot::<S, 15>(b, x, d, acc);
    }

    #[inline(always)]
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]) {
        let d = f16_at::<S>(b, 208);
        for g in 0..16 {
            let (v, sc) = q6_group(b, g);
            S::from_i8(&v).mul(S::splat(d * sc)).store(&mut y[16 * g..]);
        }
    }
}
