//! `QuantMatrix`: a frozen weight matrix kept in its stored type, as the raw bytes of GGML's
//! block layout (exactly a GGUF tensor's bytes), with its shape.

use super::format::QuantType;
use super::isa::Isa;
use super::kernels;
use super::repack::Repacked;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// A frozen (rows = out, cols = in) weight matrix in a stored type (Q4_0, Q4_1, Q8_0, Q4_K,
/// Q5_K, Q6_K, F16, BF16 or F32), row-major, each row a whole number of blocks.
#[derive(Clone, Debug)]
pub struct QuantMatrix {
    ty: QuantType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    /// The weights repacked for integer dot products (`repack.rs`), made on first use by a
    /// product that runs on them; `None` for the types that have no such layout.
    repacked: OnceLock<Option<Repacked>>,
}

impl QuantMatrix {
    /// A matrix from the raw bytes of a GGUF tensor of type `dtype` and shape (rows, cols)
    /// (GGUF's `ne` reversed, as candle reports it); errors on an unsupported type, a row
    /// length that is not a whole number of blocks, or a byte count that does not match.
    pub fn from_bytes(
        data: Vec<u8>,
        dtype: GgmlDType,
        (rows, cols): (usize, usize),
    ) -> Result<Self> {
        let ty = QuantType::from_ggml(dtype)?;
        if cols % ty.block() != 0 {
            candle_core::bail!(
                "quantised matrix: {dtype:?} rows of {cols} values are not whole {}-value blocks",
                ty.block()
            )
        }
        // Checked: a damaged file's shape must not wrap around to its byte count.
        let want = rows
            .checked_mul(cols / ty.block())
            .and_then(|blocks| blocks.checked_mul(ty.block_bytes()));
        if want != Some(data.len()) {
            candle_core::bail!(
                "quantised matrix: {dtype:?} ({rows}, {cols}) does not take the {} bytes given",
                data.len()
            )
        }
        Ok(Self {
            ty,
            rows,
            cols,
            data,
            repacked: OnceLock::new(),
        })
    }

    /// A copy of a 2-D candle `QTensor`'s bytes (as the GGUF reader returns them).
    pub fn from_qtensor(q: &QTensor) -> Result<Self> {
        let (rows, cols) = q.shape().dims2()?;
        Self::from_bytes(q.data()?.into_owned(), q.dtype(), (rows, cols))
    }

    /// A 2-D float tensor stored as `dtype`: GGML's quantisers (candle's `QTensor::quantize`)
    /// for the block types, round-to-nearest-even for F16 and BF16.
    pub fn quantize(t: &Tensor, dtype: GgmlDType) -> Result<Self> {
        let (rows, cols) = t.dims2()?;
        let ty = QuantType::from_ggml(dtype)?;
        let t = t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
        let data = match ty {
            QuantType::F32 | QuantType::F16 | QuantType::BF16 => float_bytes(ty, &v),
            // A tensor of its own: candle's quantiser reads the whole storage, whatever the
            // view (a row range of a larger tensor would be quantised from the wrong values).
            _ => {
                let own = Tensor::from_vec(v, (rows, cols), &Device::Cpu)?;
                QTensor::quantize(&own, dtype)?.data()?.into_owned()
            }
        };
        Self::from_bytes(data, dtype, (rows, cols))
    }

    /// The GGML type the weights are stored in.
    pub fn dtype(&self) -> GgmlDType {
        self.ty.ggml()
    }

    /// The kernels' name for the stored type.
    pub fn quant_type(&self) -> QuantType {
        self.ty
    }

    /// Rows (the layer's outputs).
    pub fn row_count(&self) -> usize {
        self.rows
    }

    /// Columns (the layer's inputs).
    pub fn col_count(&self) -> usize {
        self.cols
    }

    /// Bytes held (the stored blocks).
    pub fn nbytes(&self) -> usize {
        self.data.len()
    }

    /// The weights repacked for the integer products (made on the first call: a copy of
    /// about the stored size); `None` for the types other than Q4_0, Q4_1 and Q8_0.
    pub(crate) fn repacked(&self) -> Option<&Repacked> {
        let make = || Repacked::new(self.ty, &self.data, (self.rows, self.cols));
        self.repacked.get_or_init(make).as_ref()
    }

    /// The stored bytes, GGML's layout, row after row.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Bytes of one stored row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block() * self.ty.block_bytes()
    }

    /// All the weights as an f32 (rows, cols) tensor, decoded as GGML decodes them.
    pub fn dequantize(&self) -> Result<Tensor> {
        let mut out = vec![0f32; self.rows * self.cols];
        let (isa, rb, cols) = (Isa::best(), self.row_bytes().max(1), self.cols.max(1));
        out.par_chunks_mut(cols)
            .zip(self.data.par_chunks(rb))
            .for_each(|(y, row)| kernels::decode(isa, self.ty, row, y));
        Tensor::from_vec(out, (self.rows, self.cols), &Device::Cpu)
    }

    /// The matrix whose row `i` is this one's row `perm[i]` (whole rows of blocks move);
    /// errors unless `perm` is a permutation of the rows.
    pub fn permute_rows(&self, perm: &[usize]) -> Result<Self> {
        let mut seen = vec![false; self.rows];
        for &p in perm {
            if p >= self.rows || std::mem::replace(&mut seen[p], true) {
                candle_core::bail!("permute_rows: {perm:?} is not a permutation of the rows")
            }
        }
        if perm.len() != self.rows {
            candle_core::bail!(
                "permute_rows: {} indices for {} rows",
                perm.len(),
                self.rows
            )
        }
        let rb = self.row_bytes();
        let mut data = Vec::with_capacity(self.data.len());
        for &p in perm {
            data.extend_from_slice(&self.data[p * rb..(p + 1) * rb]);
        }
        Ok(Self {
            data,
            repacked: OnceLock::new(),
            ..*self
        })
    }

    /// Undoes llama.cpp's Q/K row permutation for `n_head` heads, as `gguf::unpermute` does
    /// for f32 tensors: rows (head, i, 2) become (head, 2, i).
    pub fn unpermute_heads(&self, n_head: usize) -> Result<Self> {
        if n_head == 0 || !self.rows.is_multiple_of(2 * n_head) {
            candle_core::bail!(
                "unpermute: {} rows do not split into {n_head} heads",
                self.rows
            )
        }
        let half = self.rows / n_head / 2;
        let perm: Vec<usize> = (0..self.rows)
            .map(|r| {
                let (h, s, i) = (r / (2 * half), (r / half) % 2, r % half);
                h * 2 * half + 2 * i + s
            })
            .collect();
        self.permute_rows(&perm)
    }
}

/// f32 values as the little-endian bytes of a float type (F32, F16 or BF16).
fn float_bytes(ty: QuantType, v: &[f32]) -> Vec<u8> {
    match ty {
        QuantType::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        QuantType::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::{candle_dequantized, weights};

    /// A shape whose byte count overflows is refused, not wrapped around to a small count
    /// (a damaged GGUF's shape found by the fuzz suite).
    #[test]
    fn shapes_that_overflow_are_refused() {
        // (2^59 + 1) x 32 values wrap around to 32 values: one block's 34 bytes.
        let rows = (1usize << 59) + 1;
        assert!(QuantMatrix::from_bytes(vec![0; 34], GgmlDType::Q8_0, (rows, 32)).is_err());
        assert!(QuantMatrix::from_bytes(vec![0; 34], GgmlDType::Q8_0, (1, 32)).is_ok());
    }

    /// Our decoding is candle's to the bit, and the bytes are candle's `QTensor` bytes.
    #[test]
    fn dequantize_is_candles_bit_for_bit() -> Result<()> {
        let t = weights(5, 512, 7)?;
        for dtype in QuantType::ALL.map(QuantType::ggml) {
            let w = QuantMatrix::quantize(&t, dtype)?;
            let q = QTensor::quantize(&t, dtype)?;
            assert_eq!(w.bytes(), &*q.data()?, "{dtype:?} bytes");
            assert_eq!(w.nbytes(), q.storage_size_in_bytes());
            let ours: Vec<f32> = w.dequantize()?.flatten_all()?.to_vec1()?;
            let theirs: Vec<f32> = candle_dequantized(&w)?.flatten_all()?.to_vec1()?;
            let same = ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{dtype:?} decoding differs from candle's");
            let back = QuantMatrix::from_qtensor(&q)?;
            assert_eq!((back.row_count(), back.col_count()), (5, 512));
            assert_eq!(back.dtype(), dtype);
        }
        Ok(())
    }

    #[test]
    fn a_view_is_quantised_from_its_own_values() -> Result<()> {
        // Rows 3..7 of a larger tensor: candle's quantiser alone reads rows 0..4.
        let t = Tensor::randn(0f32, 1., (8, 64), &Device::Cpu)?;
        let view = t.narrow(0, 3, 4)?;
        let own = Tensor::from_vec(view.flatten_all()?.to_vec1::<f32>()?, (4, 64), &Device::Cpu)?;
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1, GgmlDType::F16] {
            let a = QuantMatrix::quantize(&view, dtype)?;
            let b = QuantMatrix::quantize(&own, dtype)?;
            assert_eq!(a.bytes(), b.bytes(), "{dtype:?}");
        }
        Ok(())
    }

    #[test]
    fn bad_shapes_and_types_are_errors() -> Result<()> {
        assert!(QuantMatrix::from_bytes(vec![0; 18], GgmlDType::Q4_0, (1, 32)).is_ok());
        assert!(QuantMatrix::from_bytes(vec![0; 17], GgmlDType::Q4_0, (1, 32)).is_err());
        assert!(QuantMatrix::from_bytes(vec![0; 144], GgmlDType::Q4K, (1, 128)).is_err());
        assert!(QuantMatrix::from_bytes(vec![0; 22], GgmlDType::Q5_0, (1, 32)).is_err());
        Ok(())
    }

    /// Row permutations move whole rows of blocks; `unpermute_heads` is `gguf::unpermute`'s
    /// reshape (n_head, half, 2, cols) -> (n_head, 2, half, cols) on the decoded values.
    #[test]
    fn row_permutations_move_whole_rows() -> Result<()> {
        let (n_head, rows, cols) = (2, 8, 256);
        let t = weights(rows, cols, 3)?;
        for dtype in [GgmlDType::Q4K, GgmlDType::Q8_0, GgmlDType::BF16] {
            let w = QuantMatrix::quantize(&t, dtype)?;
            let d = w.dequantize()?;
            let want = d
                .reshape((n_head, rows / n_head / 2, 2, cols))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((rows, cols))?;
            let got = w.unpermute_heads(n_head)?.dequantize()?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "{dtype:?}");
            let rev: Vec<usize> = (0..rows).rev().collect();
            let r = w.permute_rows(&rev)?.dequantize()?;
            assert_eq!(
                r.get(0)?.to_vec1::<f32>()?,
                d.get(rows - 1)?.to_vec1::<f32>()?
            );
        }
        let w = QuantMatrix::quantize(&t, GgmlDType::Q8_0)?;
        assert!(w.permute_rows(&[0, 0, 1, 2, 3, 4, 5, 6]).is_err());
        assert!(w.permute_rows(&[0, 1]).is_err());
        assert!(w.unpermute_heads(3).is_err());
        Ok(())
    }
}
