//! Rows of a [`QuantMatrix`] looked up by index and decoded: an embedding table kept in its
//! stored type, of which only the looked-up rows ever exist in f32.

use super::isa::Isa;
use super::kernels;
use super::matrix::QuantMatrix;
use candle_core::Result;
use rayon::prelude::*;

impl QuantMatrix {
    /// Rows `ids` decoded to f32, one after another: (ids.len(), cols), row-major, each row
    /// exactly as [`QuantMatrix::dequantize`] decodes it. Errors on an id past the last row.
    pub fn gather_rows(&self, ids: &[u32]) -> Result<Vec<f32>> {
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.row_count()) {
            candle_core::bail!(
                "gather_rows: row {bad} of a matrix of {} rows",
                self.row_count()
            )
        }
        let (cols, rb) = (self.col_count(), self.row_bytes());
        let (isa, ty, data) = (Isa::best(), self.quant_type(), self.bytes());
        let mut out = vec![0f32; ids.len() * cols];
        out.par_chunks_mut(cols.max(1))
            .zip(ids.par_iter())
            .for_each(|(y, &i)| {
                let at = i as usize * rb;
                kernels::decode(isa, ty, &data[at..at + rb], y)
            });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::quant::testing::weights;
    use crate::quant::{QuantMatrix, QuantType};
    use candle_core::Result;

    /// Looked-up rows are the decoded matrix's rows, bit for bit, in the order asked (with
    /// repeats); an id past the end is an error.
    #[test]
    fn looked_up_rows_equal_the_dequantised_rows() -> Result<()> {
        let t = weights(9, 256, 5)?;
        let ids = [3u32, 0, 8, 3];
        for dtype in QuantType::ALL.map(QuantType::ggml) {
            let w = QuantMatrix::quantize(&t, dtype)?;
            let all: Vec<Vec<f32>> = w.dequantize()?.to_vec2()?;
            let got = w.gather_rows(&ids)?;
            for (row, &i) in got.chunks(256).zip(&ids) {
                let same = row
                    .iter()
                    .zip(&all[i as usize])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{dtype:?}: row {i} differs");
            }
            assert!(w.gather_rows(&[9]).is_err());
            assert!(w.gather_rows(&[]).unwrap().is_empty());
        }
        Ok(())
    }
}
