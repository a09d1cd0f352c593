//! Four stored rows at a time for the 32-weight block types (Q4_0, Q4_1, Q8_0): the inner
//! loop of the one-row product.
//!
//! Each 32 inputs are loaded once for the four rows, and each row keeps its 16 lane sums
//! across all its blocks (one multiply-add by the block's scale per block), summing its lanes
//! once at the end. Four rows give four independent chains of multiply-adds, so no row needs
//! two accumulators. The order of the sums is the same on every instruction set.

use super::format::Format;
use super::simd::{u16_at, Simd};

/// A 32-weight block type split into the parts the four-row loop combines.
pub(crate) trait Block32: Format {
    /// True when `corr4` may return non-zero terms.
    const CORR: bool;

    /// `t` with `x · block = d * (sum of t's lanes) + c * (sum of x)`, for the block bytes
    /// `b` and its 32 inputs `x0` (first 16) and `x1` (last 16); `d` is the f16 at the
    /// block's byte 0, `c` comes from `corr4`.
    fn lanes<S: Simd>(b: &[u8], x0: S, x1: S) -> S;

    /// The `c` of four blocks `b`, whose scales are `d`.
    fn corr4<S: Simd>(b: [&[u8]; 4], d: [f32; 4]) -> [f32; 4];
}

/// One row's partial sums: lanes of scaled block products, and the input-sum terms.
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
