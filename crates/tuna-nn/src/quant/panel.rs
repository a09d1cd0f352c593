//! The many-row products: tiles of the weight are decoded into a small f32 buffer (a few
//! hundred KiB, so it stays in L2) and handed to the `gemm` crate, one tile per task.
//!
//! The decoding is paid once per weight whatever the number of input rows, so from a few rows
//! up the products run at nearly the speed of `gemm` on an f32 weight, without ever holding an
//! f32 copy of the whole weight.

use super::isa::Isa;
use super::kernels;
use super::matrix::QuantMatrix;
use rayon::prelude::*;

/// Target size of a decoded tile, in f32 values (128 KiB).
const TILE: usize = 32 * 1024;

/// A pointer to the output that tasks writing disjoint columns share.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each task writes its own columns of the output (disjoint element sets), and the
// buffer outlives the parallel loop that uses it.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The output's element `at` (a method, so that closures capture the whole `Out`).
    fn at(&self, at: usize) -> *mut f32 {
        // SAFETY: callers stay inside the output buffer (offsets below m * n).
        unsafe { self.0.add(at) }
    }
}

/// `n` rows cut into pieces of about `want` (a multiple of `align`), into at least
/// `2 * threads` pieces when there are enough rows; returns the piece length.
fn piece(n: usize, want: usize, align: usize) -> usize {
    let threads = rayon::current_num_threads();
    let spread = n.div_ceil(2 * threads).next_multiple_of(align);
    want.min(spread).max(align)
}

/// Runs `f(scratch, i)` for each piece `i` in `0..count`: over rayon's threads, or on the
/// calling thread when the pool has one (handing each product to the pool's one worker and
/// waiting for it cost more than the product of a decoding step).
pub(crate) fn each_piece(count: usize, f: impl Fn(&mut Vec<f32>, usize) + Sync + Send) {
    if rayon::current_num_threads() <= 1 {
        let mut scratch = Vec::new();
        (0..count).for_each(|i| f(&mut scratch, i));
    } else {
        (0..count).into_par_iter().for_each_init(Vec::new, f);
    }
}

/// `x` (m, k) times `w` (n, k) transposed: (m, n), row-major, over panels of `w`'s rows.
pub(crate) fn matmul_t(isa: Isa, w: &QuantMatrix, x: &[f32], m: usize) -> Vec<f32> {
    let (n, k, rb) = (w.row_count(), w.col_count(), w.row_bytes());
    let p = piece(n, (TILE / k.max(1)).clamp(16, 512) / 16 * 16, 16);
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    let out = Out(y.as_mut_ptr());
    each_piece(n.div_ceil(p), |scratch: &mut Vec<f32>, i| {
        let (r0, rows) = (i * p, p.min(n - i * p));
        scratch.resize(rows * k, 0.0);
        let bytes = &w.bytes()[r0 * rb..(r0 + rows) * rb];
        kernels::decode(isa, w.quant_type(), bytes, scratch);
        // SAFETY: columns r0..r0 + rows of the (m, n) output belong to this task; `x`
        // holds (m, k) values and `scratch` (rows, k), read as its transpose (k, rows).
        unsafe {
            gemm::gemm(
                m,
                rows,
                k,
                out.at(r0),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                scratch.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
    });
    // SAFETY: the panels cover all n columns of all m rows, each written by its gemm.
    unsafe { y.set_len(m * n) };
    y
}

/// `g` (m, n) times `w` (n, k): (m, k), row-major, over panels of `w`'s columns (whole
/// blocks), each summed over tiles of rows.
pub(crate) fn matmul(isa: Isa, w: &QuantMatrix, g: &[f32], m: usize) -> Vec<f32> {
    let (n, k) = (w.row_count(), w.col_count());
    let block = w.quant_type().block();
    let c = piece(k, 128usize.max(block), block);
    let r = (TILE / c).max(16);
    let mut y: Vec<f32> = Vec::with_capacity(m * k);
    let out = Out(y.as_mut_ptr());
    each_piece(k.div_ceil(c), |scratch: &mut Vec<f32>, j| {
        let (c0, cols) = (j * c, c.min(k - j * c));
        for r0 in (0..n).step_by(r) {
            let rows = r.min(n - r0);
            decode_tile(isa, w, (r0, rows), (c0, cols), scratch);
            // SAFETY: columns c0..c0 + cols of the (m, k) output belong to this task and
            // were written by the first tile (read_dst only from the second on); `g`
            // holds (m, n) values, `scratch` (rows, cols).
            unsafe {
                gemm::gemm(
                    m,
                    cols,
                    rows,
                    out.at(c0),
                    1,
                    k as isize,
                    r0 > 0,
                    g.as_ptr().add(r0),
                    1,
                    n as isize,
                    scratch.as_ptr(),
                    1,
                    cols as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            };
        }
    });
    if n == 0 {
        y.resize(m * k, 0.0);
    }
    // SAFETY: with n > 0 the panels cover all k columns of all m rows; with n == 0 the
    // product is all zeros, filled above.
    unsafe { y.set_len(m * k) };
    y
}

/// Decodes rows r0..r0 + rows, columns c0..c0 + cols (whole blocks) of `w` into `out`,
/// row-major (rows, cols).
fn decode_tile(
    isa: Isa,
    w: &QuantMatrix,
    (r0, rows): (usize, usize),
    (c0, cols): (usize, usize),
    out: &mut Vec<f32>,
) {
    let ty = w.quant_type();
    let (rb, from) = (w.row_bytes(), c0 / ty.block() * ty.block_bytes());
    let len = cols / ty.block() * ty.block_bytes();
    out.resize(rows * cols, 0.0);
    for (i, y) in out.chunks_exact_mut(cols).enumerate() {
        let start = (r0 + i) * rb + from;
        kernels::decode(isa, ty, &w.bytes()[start..start + len], y);
    }
}
