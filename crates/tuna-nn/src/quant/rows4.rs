//! Four stored rows at a time for the 32-weight block types (Q4_0, Q4_1, Q8_0): the inner
//! loop of the one-row product.
//!
//! Each 32 inputs are loaded once for the four rows, and each row keeps its 16 lane sums
//! across all its blocks (one multiply-add by the block's scale per block), summing its lanes
//! once at the end. Four rows give four independent chains of multiply-adds, so no row needs
//! two accumulators. The order of the sums is the same on every instruction set.
//!
//! Several input rows (`dot4_inputs`) share each block's decoded integers: each input then
//! takes exactly the steps `dot4` takes for it alone, so its totals are `dot4`'s bit for bit.

use super::format::Format;
use super::simd::{u16_at, Simd};

/// A 32-weight block type split into the parts the four-row loop combines.
pub(crate) trait Block32: Format {
    /// True when `corr4` may return non-zero terms.
    const CORR: bool;

    /// The block's 32 integer values as f32: the first 16 (`lo`) and the last 16 (`hi`),
    /// for the block bytes `b`.
    fn ints<S: Simd>(b: &[u8]) -> (S, S);

    /// `t` with `x · block = d * (sum of t's lanes) + c * (sum of x)`, for the block bytes
    /// `b` and its 32 inputs `x0` (first 16) and `x1` (last 16); `d` is the f16 at the
    /// block's byte 0, `c` comes from `corr4`.
    #[inline(always)]
    fn lanes<S: Simd>(b: &[u8], x0: S, x1: S) -> S {
        let (lo, hi) = Self::ints::<S>(b);
        hi.madd(x1, lo.mul(x0))
    }

    /// The `c` of four blocks `b`, whose scales are `d`.
    fn corr4<S: Simd>(b: [&[u8]; 4], d: [f32; 4]) -> [f32; 4];
}

/// One row's partial sums: lanes of scaled block products, and the input-sum terms.
#[derive(Clone, Copy)]
struct Row<S> {
    lanes: S,
    corr: f32,
}

impl<S: Simd> Row<S> {
    #[inline(always)]
    fn new() -> Self {
        Self {
            lanes: S::zero(),
            corr: 0.0,
        }
    }

    /// Adds one block (`b`, scale `d`, input-sum coefficient `c`, inputs `x0`, `x1`,
    /// input sum `s`).
    #[inline(always)]
    fn add<B: Block32>(&mut self, b: &[u8], (d, c): (f32, f32), (x0, x1): (S, S), s: f32) {
        let t = B::lanes::<S>(b, x0, x1);
        self.lanes = S::splat(d).madd(t, self.lanes);
        if B::CORR {
            self.corr = S::madd1(c, s, self.corr);
        }
    }

    /// `add` on a block already decoded to its integers `(lo, hi)` (`Block32::ints`): the
    /// same operations in the same order.
    #[inline(always)]
    fn add_ints<B: Block32>(&mut self, (lo, hi): (S, S), (d, c): (f32, f32), x: (S, S), s: f32) {
        let t = hi.madd(x.1, lo.mul(x.0));
        self.lanes = S::splat(d).madd(t, self.lanes);
        if B::CORR {
            self.corr = S::madd1(c, s, self.corr);
        }
    }

    /// The row's dot product: its lanes summed, plus the input-sum terms.
    #[inline(always)]
    fn total(&self) -> f32 {
        self.lanes.sum() + self.corr
    }
}

/// `x · row` for four stored rows of type `B`; `sums` holds the sums of `x` over its groups
/// of 32.
#[inline(always)]
pub(crate) fn dot4<B: Block32, S: Simd>(rows: [&[u8]; 4], x: &[f32], sums: &[f32]) -> [f32; 4] {
    // No closures: everything here must be inlined into the `#[target_feature]` builds.
    let (mut r0, mut r1, mut r2, mut r3) = (Row::new(), Row::new(), Row::new(), Row::new());
    let n = B::BYTES;
    let quads = (rows[0].chunks_exact(n).zip(rows[1].chunks_exact(n)))
        .zip(rows[2].chunks_exact(n).zip(rows[3].chunks_exact(n)));
    for (((b0, b1), (b2, b3)), (xb, &s)) in quads.zip(x.chunks_exact(32).zip(sums)) {
        let (x0, x1) = (S::load(xb), S::load(&xb[16..]));
        let d = [u16_at(b0, 0), u16_at(b1, 0), u16_at(b2, 0), u16_at(b3, 0)];
        // The four scales in one conversion, kept in memory (`black_box`, a hint only): each
        // row's multiply-add then broadcasts its scale straight from there, where a splat of
        // a register would cost a shuffle per block and row.
        let d = std::hint::black_box(S::f16x4(d));
        let c = B::corr4::<S>([b0, b1, b2, b3], d);
        let x = (x0, x1);
        r0.add::<B>(b0, (d[0], c[0]), x, s);
        r1.add::<B>(b1, (d[1], c[1]), x, s);
        r2.add::<B>(b2, (d[2], c[2]), x, s);
        r3.add::<B>(b3, (d[3], c[3]), x, s);
    }
    [r0.total(), r1.total(), r2.total(), r3.total()]
}

/// `dot4` for `R` input rows at once (1 to 4): `xs[r]` and its group sums `sums[r]` give
/// `totals[r]`, equal bit for bit to `dot4(rows, xs[r], sums[r])`. Each block of the four
/// stored rows is decoded to its integers once for all the inputs.
#[inline(always)]
pub(crate) fn dot4_inputs<B: Block32, S: Simd, const R: usize>(
    rows: [&[u8]; 4],
    xs: [&[f32]; R],
    sums: [&[f32]; R],
) -> [[f32; 4]; R] {
    // No closures, as in `dot4`; the loops over `R` and the four rows unroll.
    let mut acc = [[Row::<S>::new(); 4]; R];
    let n = B::BYTES;
    let quads = (rows[0].chunks_exact(n).zip(rows[1].chunks_exact(n)))
        .zip(rows[2].chunks_exact(n).zip(rows[3].chunks_exact(n)));
    for (j, ((b0, b1), (b2, b3))) in quads.enumerate() {
        let d = [u16_at(b0, 0), u16_at(b1, 0), u16_at(b2, 0), u16_at(b3, 0)];
        let d = std::hint::black_box(S::f16x4(d));
        let c = B::corr4::<S>([b0, b1, b2, b3], d);
        let ints = [
            B::ints::<S>(b0),
            B::ints::<S>(b1),
            B::ints::<S>(b2),
            B::ints::<S>(b3),
        ];
        for (a, (xr, sr)) in acc.iter_mut().zip(xs.iter().zip(&sums)) {
            let xb = &xr[32 * j..32 * j + 32];
            let x = (S::load(xb), S::load(&xb[16..]));
            let s = sr[j];
            a[0].add_ints::<B>(ints[0], (d[0], c[0]), x, s);
            a[1].add_ints::<B>(ints[1], (d[1], c[1]), x, s);
            a[2].add_ints::<B>(ints[2], (d[2], c[2]), x, s);
            a[3].add_ints::<B>(ints[3], (d[3], c[3]), x, s);
        }
    }
    let mut totals = [[0f32; 4]; R];
    for (t, a) in totals.iter_mut().zip(&acc) {
        *t = [a[0].total(), a[1].total(), a[2].total(), a[3].total()];
    }
    totals
}
