//! f32 matrix products straight into a fresh buffer, on the `gemm` crate candle uses.
//!
//! candle's matmul zero-fills its output before the product, and a bias or a gradient sum is
//! then one more pass over it. Here the output is written once: left uninitialised when the
//! product overwrites it, or started from given rows (a bias) that the product adds to.

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// A 2-D f32 matrix in memory with its strides (elements), as candle's layouts give them.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Mat<'a> {
    /// The matrix a 2-D layout describes in `s`.
    pub fn new(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<Self> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("{op}: only f32 is supported")
        };
        let (dims, st) = (l.shape().dims2()?, l.stride());
        Self::from_slice(&v[l.start_offset()..], dims, (st[0], st[1]))
            .map_err(|_| candle_core::Error::Msg(format!("{op}: layout runs past its storage")))
    }

    /// The matrix at the start of `data` with the given strides (elements); errors when the
    /// last element lies past the end of `data`.
    pub fn from_slice(
        data: &'a [f32],
        (rows, cols): (usize, usize),
        (row_stride, col_stride): (usize, usize),
    ) -> Result<Self> {
        let last = (rows.max(1) - 1) * row_stride + (cols.max(1) - 1) * col_stride;
        if rows * cols > 0 && last >= data.len() {
            candle_core::bail!("matrix view runs past its data")
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride: row_stride as isize,
            col_stride: col_stride as isize,
        })
    }

    /// The transpose (a view: strides swapped).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Columns `start..start + len` (a view).
    pub fn narrow_cols(self, start: usize, len: usize) -> Result<Self> {
        if start + len > self.cols {
            candle_core::bail!("narrow_cols: {start}+{len} past {} columns", self.cols)
        }
        let at = start * self.col_stride as usize;
        Ok(Self {
            data: self.data.get(at..).unwrap_or(&[]),
            cols: len,
            ..self
        })
    }

    /// (rows, cols).
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Row `r` as a slice when the columns are contiguous.
    pub fn row(&self, r: usize) -> Option<&'a [f32]> {
        let at = r * self.row_stride as usize;
        (self.col_stride == 1 && r < self.rows).then(|| &self.data[at..at + self.cols])
    }

    /// Element (r, c).
    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.row_stride as usize + c * self.col_stride as usize]
    }
}

/// The CPU storage and layout of a tensor (for a custom op's backward), or an error naming `op`.
pub(crate) fn cpu_parts<'a>(
    t: &'a Tensor,
    op: &str,
) -> Result<(impl std::ops::Deref<Target = Storage> + 'a, Layout)> {
    let (s, l) = t.storage_and_layout();
    if !matches!(&*s, Storage::Cpu(_)) {
        candle_core::bail!("{op}: only the CPU is supported")
    }
    Ok((s, l.clone()))
}

/// The CPU side of a storage that `cpu_parts` has checked.
pub(crate) fn cpu(s: &Storage) -> &CpuStorage {
    match s {
        Storage::Cpu(c) => c,
        _ => unreachable!("checked in cpu_parts"),
    }
}

/// Calls `f` with the matrix view of a 2-D CPU f32 tensor.
pub fn with_mat<R>(t: &Tensor, op: &str, f: impl FnOnce(Mat) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(s) = &*storage else {
        candle_core::bail!("{op}: only the CPU is supported")
    };
    f(Mat::new(s, layout, op)?)
}

/// `a b` (m, n) in a new row-major buffer; when `init` is given (n values), each output row
/// starts from it and the product is added (a bias in the same pass).
pub fn product(a: Mat, b: Mat, init: Option<&[f32]>) -> Result<Vec<f32>> {
    let ((m, k), (k2, n)) = (a.dims(), b.dims());
    if k != k2 || init.is_some_and(|r| r.len() != n) {
        candle_core::bail!("product: ({m}, {k}) x ({k2}, {n}) do not fit")
    }
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    if m * n > 0 {
        let threads = candle_core::utils::get_num_threads();
        if let Some(row) = init {
            start_rows(&mut out.spare_capacity_mut()[..m * n], row, threads);
        }
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: `out` has room for m * n values (row stride n); with `init` they are
        // initialised and read, otherwise only written.
        unsafe { gemm_into(out.as_mut_ptr(), n, a, b, 1.0, init.is_some(), par) };
    }
    // SAFETY: all m * n values were written above.
    unsafe { out.set_len(m * n) };
    Ok(out)
}

/// Each `row.len()`-long row of `out` set to `row`; split between the threads when there are
/// several, so that the other cores do not wait while one copies the bias into every row.
fn start_rows(out: &mut [std::mem::MaybeUninit<f32>], row: &[f32], threads: usize) {
    use rayon::prelude::*;
    let fill = |o: &mut [std::mem::MaybeUninit<f32>]| {
        for (o, &b) in o.iter_mut().zip(row) {
            o.write(b);
        }
    };
    if threads > 1 {
        out.par_chunks_mut(row.len()).for_each(fill);
    } else {
        out.chunks_mut(row.len()).for_each(fill);
    }
}

/// `dst += scale * a b` over all threads; `dst` holds the (m, n) result row-major at row
/// stride `ld`.
pub fn product_add(dst: &mut [f32], ld: usize, a: Mat, b: Mat, scale: f32) -> Result<()> {
    let ((m, k), (k2, n)) = (a.dims(), b.dims());
    if k != k2 || n > ld || (m * n > 0 && (m - 1) * ld + n > dst.len()) {
        candle_core::bail!("product_add: ({m}, {k}) x ({k2}, {n}) do not fit the output")
    }
    if m * n == 0 {
        return Ok(());
    }
    let threads = candle_core::utils::get_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `dst` holds m initialised rows of n values at stride ld (checked above).
    unsafe { gemm_into(dst.as_mut_ptr(), ld, a, b, scale, true, par) };
    Ok(())
}

/// `dst = scale * a b` (or `dst += scale * a b` when `accumulate`) on the calling thread; `dst`
/// holds the (m, n) result row-major at row stride `ld`. For many small products that are
/// already spread over threads (attention's heads).
pub fn product_to(
    dst: &mut [f32],
    ld: usize,
    a: Mat,
    b: Mat,
    scale: f32,
    accumulate: bool,
) -> Result<()> {
    let ((m, k), (k2, n)) = (a.dims(), b.dims());
    if k != k2 || n > ld || (m * n > 0 && (m - 1) * ld + n > dst.len()) {
        candle_core::bail!("product_to: ({m}, {k}) x ({k2}, {n}) do not fit the output")
    }
    if m * n == 0 {
        return Ok(());
    }
    // SAFETY: `dst` holds m rows of n values at stride ld (checked above); it is read only
    // when `accumulate`, and then it is initialised (a slice).
    unsafe {
        gemm_into(
            dst.as_mut_ptr(),
            ld,
            a,
            b,
            scale,
            accumulate,
            gemm::Parallelism::None,
        )
    };
    Ok(())
}

/// `dst = scale * a b`, or `dst += scale * a b` when `accumulate`, at row stride `ld`.
///
/// # Safety
/// `dst` must have room for `a.rows` rows of `b.cols` values at stride `ld`, initialised when
/// `accumulate`; `a` and `b` are bounds-checked views (`Mat::new`, `Mat::from_slice`).
unsafe fn gemm_into(
    dst: *mut f32,
    ld: usize,
    a: Mat,
    b: Mat,
    scale: f32,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    let ((m, k), (_, n)) = (a.dims(), b.dims());
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        ld as isize,
        accumulate,
        a.data.as_ptr(),
        a.col_stride,
        a.row_stride,
        b.data.as_ptr(),
        b.col_stride,
        b.row_stride,
        if accumulate { 1.0 } else { 0.0 },
        scale,
        false,
        false,
        false,
        par,
    );
}

/// The sum over rows of `g` (rows, n), each column summed from the first row to the last.
pub fn column_sums(g: Mat) -> Vec<f32> {
    use rayon::prelude::*;
    const COLS: usize = 64;
    let (rows, n) = g.dims();
    let mut out = vec![0f32; n];
    out.par_chunks_mut(COLS).enumerate().for_each(|(i, acc)| {
        let c0 = i * COLS;
        for r in 0..rows {
            if g.col_stride == 1 {
                let start = r * g.row_stride as usize + c0;
                let row = &g.data[start..start + acc.len()];
                acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            } else {
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += g.at(r, c0 + j);
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn mat_of<R>(t: &Tensor, f: impl FnOnce(Mat) -> Result<R>) -> Result<R> {
        with_mat(t, "test", f)
    }

    #[test]
    fn products_of_strided_views_match_candle() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 12., &dev)?.reshape((3, 4))?;
        let b = Tensor::arange(-4f32, 16., &dev)?.reshape((4, 5))?;
        let bias = [1f32, 2., 3., 4., 5.];
        let want: Vec<f32> = a.matmul(&b)?.flatten_all()?.to_vec1()?;
        let got = mat_of(&a, |am| mat_of(&b, |bm| product(am, bm, None)))?;
        assert_eq!(got, want);
        let with_bias = mat_of(&a, |am| mat_of(&b, |bm| product(am, bm, Some(&bias))))?;
        let want_bias: Vec<f32> = want
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % 5])
            .collect();
        assert_eq!(with_bias, want_bias);
        // a^T a through a transposed view and through a transposed layout.
        let want: Vec<f32> = a.t()?.matmul(&a)?.flatten_all()?.to_vec1()?;
        let got = mat_of(&a, |am| product(am.t(), am, None))?;
        assert_eq!(got, want);
        let at = a.t()?;
        let got = mat_of(&at, |atm| mat_of(&a, |am| product(atm, am, None)))?;
        assert_eq!(got, want);
        let sums = mat_of(&a, |am| Ok(column_sums(am)))?;
        assert_eq!(sums, vec![12., 15., 18., 21.]);
        Ok(())
    }

    #[test]
    fn mismatched_shapes_are_an_error() -> Result<()> {
        let a = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu)?;
        assert!(mat_of(&a, |am| product(am, am, None)).is_err());
        Ok(())
    }
}
