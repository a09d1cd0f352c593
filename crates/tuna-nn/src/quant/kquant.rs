//! The 256-weight "K" block types: Q4_K, Q5_K and Q6_K (`block_q4_K` etc. in GGML's
//! `ggml-common.h`; the decoding follows `dequantize_row_q4_K` etc. in `ggml-quants.c`).
//!
//! Q4_K and Q5_K split a block into 8 groups of 32, each with a 6-bit scale and minimum
//! (packed in 12 bytes); Q6_K into 16 groups of 16 with signed 8-bit scales. As for the
//! 32-weight types, each group's integer values meet the f32 inputs in 16 lanes and are scaled
//! once; the minimums multiply the sums of the group's inputs.

use super::format::{dot_blocks, Acc, Format};
use super::lanes::{f16_at, madd, madd_lanes, scale_add, Lanes};

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

/// The 4-bit values of Q4_K/Q5_K's 64-weight chunk `c`: 32 low nibbles then 32 high ones,
/// each plus 16 where Q5_K's high-bit bytes `qh` (if any) have bit `2c` (low) or `2c + 1`
/// (high) set.
#[inline(always)]
fn chunk_values(ql: &[u8], qh: Option<&[u8]>, c: usize, half: usize) -> [Lanes; 2] {
    let ql: &[u8; 32] = ql[32 * c..32 * c + 32].try_into().expect("32 bytes");
    let shift = 2 * c + half;
    std::array::from_fn(|h| {
        std::array::from_fn(|j| {
            let l = 16 * h + j;
            let q = if half == 0 { ql[l] & 15 } else { ql[l] >> 4 };
            let high = qh.map_or(0, |qh| ((qh[l] >> shift) & 1) << 4);
            (q | high) as f32
        })
    })
}

/// Q4_K and Q5_K's dot product of one block (`qh` at byte 16 for Q5_K, values after it).
#[inline(always)]
fn dot_k4<const FMA: bool>(b: &[u8], x: &[f32], s: &[f32], acc: &mut Acc, five: bool) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let (qh, ql) = if five {
        (Some(&b[16..48]), &b[48..176])
    } else {
        (None, &b[16..144])
    };
    for c in 0..4 {
        for half in 0..2 {
            let g = 2 * c + half;
            let (sc, m) = scale_min(g, scales);
            let v = chunk_values(ql, qh, c, half);
            let mut t = [0f32; 16];
            madd_lanes::<FMA>(&mut t, &x[32 * g..], &v[0]);
            madd_lanes::<FMA>(&mut t, &x[32 * g + 16..], &v[1]);
            scale_add::<FMA>(&mut acc.lanes, d * sc, &t);
            acc.corr = madd::<FMA>(-(dmin * m), s[g], acc.corr);
        }
    }
}

/// Q4_K and Q5_K's decoding of one block, in GGML's order of operations.
#[inline(always)]
fn decode_k4(b: &[u8], y: &mut [f32], five: bool) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (qh, ql) = if five {
        (Some(&b[16..48]), &b[48..176])
    } else {
        (None, &b[16..144])
    };
    for c in 0..4 {
        for half in 0..2 {
            let g = 2 * c + half;
            let (sc, m) = scale_min(g, &b[4..16]);
            let (d1, m1) = (d * sc, dmin * m);
            let v = chunk_values(ql, qh, c, half);
            for (j, q) in v.iter().flatten().enumerate() {
                y[32 * g + j] = d1 * q - m1;
            }
        }
    }
}

/// Q4_K: `d`, `dmin` (f16), 12 bytes of scales and minimums, 128 bytes of 4-bit values.
pub(crate) struct Q4K;

impl Format for Q4K {
    const BYTES: usize = 144;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        dot_blocks(row, x, sums, (256, Self::BYTES), |b, x, s, acc| {
            dot_k4::<FMA>(b, x, s, acc, false)
        })
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(256))
        {
            decode_k4(b, y, false);
        }
    }
}

/// Q5_K: as Q4_K with 32 bytes of fifth bits (`qh`) before the 4-bit values.
pub(crate) struct Q5K;

impl Format for Q5K {
    const BYTES: usize = 176;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        dot_blocks(row, x, sums, (256, Self::BYTES), |b, x, s, acc| {
            dot_k4::<FMA>(b, x, s, acc, true)
        })
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(256))
        {
            decode_k4(b, y, true);
        }
    }
}

/// Q6_K's 16 signed values (q - 32) of group `g` (0..16) and that group's scale index.
#[inline(always)]
fn q6_group(b: &[u8], g: usize) -> (Lanes, usize) {
    // Each 128-weight half `n` has 64 `ql` bytes and 32 `qh` bytes; within it, quarter `q`
    // (32 weights) takes the low (q < 2) or high nibbles of ql[32 * (q % 2)..] and bits
    // 2q..2q+2 of qh; `h` picks the first or second 16 of the quarter.
    let (n, q, h) = (g / 8, (g / 2) % 4, g % 2);
    let ql = &b[64 * n + 32 * (q % 2) + 16 * h..][..16];
    let qh = &b[128 + 32 * n + 16 * h..][..16];
    let v = std::array::from_fn(|j| {
        let lo = if q < 2 { ql[j] & 15 } else { ql[j] >> 4 };
        let hi = ((qh[j] >> (2 * q)) & 3) << 4;
        ((lo | hi) as i32 - 32) as f32
    });
    (v, 8 * n + 2 * q + h)
}

/// Q6_K: 128 bytes of low 4 bits, 64 of high 2 bits, 16 signed scales, `d` (f16).
pub(crate) struct Q6K;

impl Format for Q6K {
    const BYTES: usize = 210;

    #[inline(always)]
    fn dot_row<const FMA: bool>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        dot_blocks(row, x, sums, (256, Self::BYTES), |b, x, _, acc| {
            let d = f16_at(b, 208);
            for g in 0..16 {
                let (v, is) = q6_group(b, g);
                let mut t = [0f32; 16];
                madd_lanes::<FMA>(&mut t, &x[16 * g..], &v);
                scale_add::<FMA>(&mut acc.lanes, d * (b[192 + is] as i8) as f32, &t);
            }
        })
    }

    fn decode(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(256))
        {
            let d = f16_at(b, 208);
            for g in 0..16 {
                let (v, is) = q6_group(b, g);
                let ds = d * (b[192 + is] as i8) as f32;
                for (j, q) in v.iter().enumerate() {
                    y[16 * g + j] = ds * q;
                }
            }
        }
    }
}
