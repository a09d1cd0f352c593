//! Token embedding table: (..., T) ids -> (..., T, H) rows. The table is an f32 tensor
//! (differentiable when it is a variable), or frozen in its stored type ([`crate::quant::QuantMatrix`]), in
//! which case only the looked-up rows are decoded and no f32 copy of the table exists.

use crate::weight::Weight;
use candle_core::{DType, Result, Tensor};

/// A (vocabulary, hidden) embedding table.
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Weight,
}

impl Embedding {
    /// The table `weight` (vocabulary, hidden).
    pub fn new(weight: Tensor) -> Result<Self> {
        weight.dims2()?;
        Ok(Self {
            weight: Weight::Dense(weight),
        })
    }

    /// The table.
    pub fn weight(&self) -> &Weight {
        &self.weight
    }

    /// Replaces the table by `w` of the same shape: a variable, the decoded table, or the
    /// table in its stored type.
    pub fn set_weight(&mut self, w: Weight) -> Result<()> {
        let (want, got) = (self.weight.dims2()?, w.dims2()?);
        if got != want {
            candle_core::bail!("embedding table {got:?} for one of {want:?}")
        }
        self.weight = w;
        Ok(())
    }

    /// The rows of `ids` (any shape of integer ids): (ids..., hidden).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, hidden) = self.weight.dims2()?;
        let mut dims = ids.dims().to_vec();
        dims.push(hidden);
        let flat = ids.flatten_all()?;
        match &self.weight {
            Weight::Dense(w) => w.index_select(&flat, 0)?.reshape(dims),
            Weight::Quant(q) => {
                let ids: Vec<u32> = flat.to_dtype(DType::U32)?.to_vec1()?;
                Tensor::from_vec(q.gather_rows(&ids)?, dims, flat.device())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QuantMatrix;
    use candle_core::quantized::GgmlDType;
    use candle_core::{Device, Var};
    use std::sync::Arc;

    /// A stored table's lookups equal the decoded table's, bit for bit, for (B, T) ids; a
    /// tensor table is differentiable.
    #[test]
    fn stored_lookups_equal_the_decoded_table() -> Result<()> {
        let dev = Device::Cpu;
        let t = Tensor::randn(0f32, 1., (11, 64), &dev)?;
        let q = Arc::new(QuantMatrix::quantize(&t, GgmlDType::Q8_0)?);
        let ids = Tensor::new(&[[3u32, 0, 10], [3, 7, 1]], &dev)?;
        let mut stored = Embedding::new(Tensor::zeros((11, 64), DType::F32, &dev)?)?;
        stored.set_weight(Weight::Quant(q.clone()))?;
        let decoded = Embedding::new(q.dequantize()?)?;
        let (a, b) = (stored.forward(&ids)?, decoded.forward(&ids)?);
        assert_eq!(a.dims(), &[2, 3, 64]);
        let d: f32 = (a - b)?.abs()?.max_all()?.to_scalar()?;
        assert_eq!(d, 0.0);
        let bad = Arc::new(QuantMatrix::quantize(
            &t.narrow(0, 0, 10)?,
            GgmlDType::Q8_0,
        )?);
        assert!(stored.set_weight(Weight::Quant(bad)).is_err());
        let v = Var::from_tensor(&t)?;
        let trained = Embedding::new(v.as_tensor().clone())?;
        let g = trained.forward(&ids)?.sum_all()?.backward()?;
        let grad = g.get(v.as_tensor()).unwrap();
        // Six lookups of 64 values each; row 3 is looked up twice.
        assert_eq!(grad.sum_all()?.to_scalar::<f32>()?, 6.0 * 64.0);
        assert_eq!(grad.get(3)?.sum_all()?.to_scalar::<f32>()?, 2.0 * 64.0);
        Ok(())
    }
}
