//! The integer dot products of the 32-weight block types on AVX-512 VNNI: repacked weights
//! (`repack.rs`, unsigned bytes, 16 rows in the 16 lanes) times inputs rounded to 16 bits
//! (`int_inputs.rs`, signed bytes `hi` and `lo`). `vpdpbusd` multiplies four weights of each
//! of 16 rows by four input bytes and adds the four products to each row's i32 lane: a block
//! (32 weights of 16 rows) of one input takes 16 of them for 4-bit weights (8 chunks of
//! weights and inputs, for `hi` and `lo`), where f32 takes 32 multiply-adds.
//!
//! Per block and input the lanes' integer sums are exact, `256 * hi + lo` recombines them,
//! and `y += float(sum) * (d * scale) + c * (scale * Σ q)` in f32, block by block: the same
//! operations for an input whatever the other inputs, so a row decoded in a batch gets the
//! numbers it gets alone. Inputs go eight at a time, each block's weights decoded once for
//! them.

use super::int_inputs::IntInputs;
use super::repack::{Repacked, ROWS};
use std::arch::x86_64::*;
use std::ops::Range;

/// Inputs taken at once (their accumulators fill the 32 vector registers).
const INPUTS: usize = 8;

/// Blocks ahead of the one computed that are prefetched (the weights are read once per step,
/// from memory or the last-level cache).
const AHEAD: usize = 4;

/// Where the products go: `m` rows of `n` values, row-major, shared by the threads that
/// fill disjoint column ranges of it (the groups each computes).
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub(crate) ptr: *mut f32,
    pub(crate) n: usize,
}
// SAFETY: each thread writes the columns of its own groups only (disjoint elements), and the
// buffer outlives the threads' work (`int_rows` waits for every share).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `y[r][j] = x_r · row j` for the rows `j < y.n` of `groups` and every input `r` of `x`.
/// Unsafe: the CPU must have AVX-512 F, BW and VNNI, and `y` hold `m` rows of `y.n` values
/// that no one else touches in these columns meanwhile.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn dot_groups(p: &Repacked, groups: Range<usize>, x: &IntInputs, y: Out) {
    let m = x.scales.len() / x.blocks.max(1);
    for g in groups {
        for r0 in (0..m).step_by(INPUTS) {
            match (m - r0).min(INPUTS) {
                1 => group::<1>(p, g, x, r0, y),
                2 => group::<2>(p, g, x, r0, y),
                3 => group::<3>(p, g, x, r0, y),
                4 => group::<4>(p, g, x, r0, y),
                5 => group::<5>(p, g, x, r0, y),
                6 => group::<6>(p, g, x, r0, y),
                7 => group::<7>(p, g, x, r0, y),
                _ => group::<8>(p, g, x, r0, y),
            }
        }
    }
}

/// Inputs `r0..r0 + R` times group `g`: its 16 outputs per input (fewer in a last group
/// that is padded).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn group<const R: usize>(p: &Repacked, g: usize, x: &IntInputs, r0: usize, y: Out) {
    let (nb, bs, wb) = (p.blocks, p.stride(), p.weight_bytes());
    let group = &p.data[g * nb * bs..(g + 1) * nb * bs];
    let mut acc = [_mm512_setzero_ps(); R];
    for b in 0..nb {
        let w = group[b * bs..].as_ptr();
        // Four blocks ahead: a step's weights stream from memory.
        for line in (0..bs).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(AHEAD * bs + line) as *const i8);
        }
        let xb: [*const i8; R] =
            std::array::from_fn(|r| x.bytes[((r0 + r) * nb + b) * 64..].as_ptr());
        let (hi, lo) = if p.nibbles {
            sums4::<R>(w, xb)
        } else {
            sums8::<R>(w, xb)
        };
        let d = _mm512_loadu_ps(w.add(wb) as *const f32);
        let c = _mm512_loadu_ps(w.add(wb + 4 * ROWS) as *const f32);
        for r in 0..R {
            let at = (r0 + r) * nb + b;
            let sum = _mm512_add_epi32(_mm512_slli_epi32(hi[r], 8), lo[r]);
            let scale = _mm512_mul_ps(d, _mm512_set1_ps(x.scales[at]));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r]);
            acc[r] = _mm512_fmadd_ps(c, _mm512_set1_ps(x.sums[at]), acc[r]);
        }
    }
    let valid = (y.n - g * ROWS).min(ROWS);
    let mask: __mmask16 = ((1u32 << valid) - 1) as __mmask16;
    for (r, a) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(y.ptr.add((r0 + r) * y.n + g * ROWS), mask, *a);
    }
}

/// Four input bytes at `p` as every lane of a vector.
#[inline(always)]
unsafe fn four(p: *const i8) -> __m512i {
    _mm512_set1_epi32(std::ptr::read_unaligned(p as *const i32))
}

/// A block's integer sums with `hi` and with `lo` for R inputs, 4-bit weights at `w`.
#[inline(always)]
unsafe fn sums4<const R: usize>(w: *const u8, xb: [*const i8; R]) -> ([__m512i; R], [__m512i; R]) {
    let (mut hi, mut lo) = ([_mm512_setzero_si512(); R], [_mm512_setzero_si512(); R]);
    let mask = _mm512_set1_epi8(15);
    for chunk in 0..4 {
        let v = _mm512_loadu_si512(w.add(64 * chunk) as *const _);
        let first = _mm512_and_si512(v, mask);
        let second = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
        for r in 0..R {
            let xr = xb[r].add(8 * chunk);
            hi[r] = _mm512_dpbusd_epi32(hi[r], first, four(xr));
            lo[r] = _mm512_dpbusd_epi32(lo[r], first, four(xr.add(32)));
            hi[r] = _mm512_dpbusd_epi32(hi[r], second, four(xr.add(4)));
            lo[r] = _mm512_dpbusd_epi32(lo[r], second, four(xr.add(36)));
        }
    }
    (hi, lo)
}

/// `sums4` for 8-bit weights.
#[inline(always)]
unsafe fn sums8<const R: usize>(w: *const u8, xb: [*const i8; R]) -> ([__m512i; R], [__m512i; R]) {
    let (mut hi, mut lo) = ([_mm512_setzero_si512(); R], [_mm512_setzero_si512(); R]);
    for chunk in 0..8 {
        let v = _mm512_loadu_si512(w.add(64 * chunk) as *const _);
        for r in 0..R {
            let xr = xb[r].add(4 * chunk);
            hi[r] = _mm512_dpbusd_epi32(hi[r], v, four(xr));
            lo[r] = _mm512_dpbusd_epi32(lo[r], v, four(xr.add(32)));
        }
    }
    (hi, lo)
}

/// True when this CPU runs `dot_groups`.
pub(crate) fn supported() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}
