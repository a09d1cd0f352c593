//! Four stored rows at a time for the 32-weight block types (Q4_0, Q4_1, Q8_0): the inner
//! loop of the one-row product.
//!
//! Each block is decoded to its 32 weights (`d * q + c` in one rounding), each 32 inputs are
//! loaded once for the four rows, and each row keeps its 16 lane sums across all its blocks
//! (two multiply-adds per block), summing its lanes once at the end. Four rows give four
//! independent chains of multiply-adds. The order of the sums is the same on every
//! instruction set.
//!
//! Several input rows (`dot_inputs`) share each block's decoded weights: each input then
//! takes exactly the steps `dot4` takes for it alone, so its totals are `dot4`'s bit for bit,
//! and all an extra input costs is its two multiply-adds per row and block.

use super::format::Format;
use super::simd::{u16_at, Simd};

/// A 32-weight block type split into the parts the four-row loop combines.
pub(crate) trait Block32: Format {
    /// True when the weights have an offset (`c` of `offsets4`), false for `d * q`.
    const OFFSET: bool;
    /// True when eight inputs at a time over two stored rows beat four over four (measured
    /// per type: `QUANT_SPEED_FEW_ROWS=8` of the `quant_speed` example).
    const EIGHT_INPUTS: bool;

    /// The block's 32 integer values as f32: the first 16 (`lo`) and the last 16 (`hi`),
    /// for the block bytes `b`.
    fn ints<S: Simd>(b: &[u8]) -> (S, S);

    /// The offsets `c` of four blocks `b`, whose scales are `d`: each weight is
    /// `d * q + c` (`q` from `ints`), one rounding (a fused multiply-add).
    fn offsets4<S: Simd>(b: [&[u8]; 4], d: [f32; 4]) -> [f32; 4];

    /// The 32 weights of block `b` as f32, for its scale `d` and offset `c`: `weights` of
    /// its `ints` (the 4-bit types look their 16 values up instead, the same numbers).
    #[inline(always)]
    fn block_weights<S: Simd>(b: &[u8], d: f32, c: f32) -> (S, S) {
        Self::weights(Self::ints::<S>(b), d, c)
    }

    /// The block's 32 weights as f32 from its integers, scale `d` and offset `c`.
    #[inline(always)]
    fn weights<S: Simd>((lo, hi): (S, S), d: f32, c: f32) -> (S, S) {
        let d = S::splat(d);
        if Self::OFFSET {
            let c = S::splat(c);
            (lo.madd(d, c), hi.madd(d, c))
        } else {
            (lo.mul(d), hi.mul(d))
        }
    }

    /// `acc` plus the block's weights `w` times its 32 inputs `x`, lane by lane: the first
    /// 16 products, then the last 16 (the order every kernel of these types keeps).
    #[inline(always)]
    fn madd_block<S: Simd>(w: (S, S), x: (S, S), acc: S) -> S {
        w.1.madd(x.1, w.0.madd(x.0, acc))
    }
}

/// The weights of `Q` blocks `b` (2 or 4): each decoded once, to be multiplied by any number
/// of inputs.
#[inline(always)]
fn weights_of<B: Block32, S: Simd, const Q: usize>(b: [&[u8]; Q]) -> [(S, S); Q] {
    let four = [b[0], b[1 % Q], b[2 % Q], b[3 % Q]];
    let d = [
        u16_at(four[0], 0),
        u16_at(four[1], 0),
        u16_at(four[2], 0),
        u16_at(four[3], 0),
    ];
    // The scales (and offsets) in one conversion each, kept in memory (`black_box`, a hint
    // only): each row's multiply-add then broadcasts its scale straight from there, where a
    // splat of a register would cost a shuffle per block and row.
    let d = std::hint::black_box(S::f16x4(d));
    let c = std::hint::black_box(B::offsets4::<S>(four, d));
    let mut w = [(S::zero(), S::zero()); Q];
    for (i, wi) in w.iter_mut().enumerate() {
        *wi = B::block_weights::<S>(b[i], d[i], c[i]);
    }
    w
}

/// `x · row` for four stored rows of type `B`, each row's 16 lanes summed once at the end.
#[inline(always)]
pub(crate) fn dot4<B: Block32, S: Simd>(rows: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    dot_inputs::<B, S, 4, 1>(rows, x)[0]
}

/// `dot4` for `Q` stored rows (2 or 4) and `R` input rows at once, the inputs interleaved
/// block by block (`xi`: input 0's first 32 values, input 1's, ..., then each input's next
/// 32; `Interleaved`): `totals[r]` is bit for bit what `dot4` gives each row for input `r`
/// alone. Each block of the stored rows is decoded to its weights once for all the inputs,
/// which then take two multiply-adds per row and block each. `Q * R` accumulators: at most
/// 16 keep them all in registers (four rows for up to four inputs, two rows for up to eight).
#[inline(always)]
pub(crate) fn dot_inputs<B: Block32, S: Simd, const Q: usize, const R: usize>(
    rows: [&[u8]; Q],
    xi: &[f32],
) -> [[f32; Q]; R] {
    // No closures: everything here must be inlined into the `#[target_feature]` builds; the
    // loops over `R` and `Q` unroll.
    let mut acc = [[S::zero(); Q]; R];
    let n = B::BYTES;
    for (j, xj) in xi.chunks_exact(32 * R).enumerate() {
        let mut b = [rows[0]; Q];
        for (bi, row) in b.iter_mut().zip(&rows) {
            *bi = &row[j * n..(j + 1) * n];
        }
        let w = weights_of::<B, S, Q>(b);
        for (a, xb) in acc.iter_mut().zip(xj.chunks_exact(32)) {
            let x = (S::load(xb), S::load(&xb[16..]));
            for (ai, wi) in a.iter_mut().zip(&w) {
                *ai = B::madd_block(*wi, x, *ai);
            }
        }
    }
    lane_sums(acc)
}

/// Each accumulator's `Simd::sum`, sixteen at a time where there are sixteen.
#[inline(always)]
fn lane_sums<S: Simd, const Q: usize, const R: usize>(acc: [[S; Q]; R]) -> [[f32; Q]; R] {
    let mut totals = [[0f32; Q]; R];
    if Q * R == 16 {
        let mut all = [S::zero(); 16];
        for (i, a) in acc.iter().flatten().enumerate() {
            all[i] = *a;
        }
        let sums = S::sum16(all);
        for (i, t) in totals.iter_mut().flatten().enumerate() {
            *t = sums[i];
        }
        return totals;
    }
    for (t, a) in totals.iter_mut().zip(&acc) {
        for (ti, ai) in t.iter_mut().zip(a) {
            *ti = ai.sum();
        }
    }
    totals
}
