//! Rotary position embeddings (RoPE), Hugging Face's half-split layout.

use crate::ops;
use candle_core::{DType, Device, Result, Tensor};

/// Precomputed cos/sin tables for positions `0..max_positions`.
#[derive(Debug, Clone)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    /// Tables for head size `head_dim` and base `theta` (`rope_theta`).
    pub fn new(head_dim: usize, max_positions: usize, theta: f64, dev: &Device) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, head_dim / 2), dev)?;
        let pos = Tensor::arange(0u32, max_positions as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?;
        let freqs = pos.broadcast_mul(&inv_freq)?; // (T, D/2)
        Ok(Self {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
        })
    }

    /// Rotates `x` (B, H, T, D) as positions `offset..offset + T`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let t = x.dim(2)?;
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        ops::rope(x, &cos, &sin)
    }

    /// Rotates `x` (B, H, T, D) at per-row positions `ids` (B, T) u32 (left-padded batches).
    pub fn apply_ids(&self, x: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&flat, 0)?.reshape((b, t, half))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((b, t, half))?;
        ops::rope(x, &cos, &sin)
    }

    /// Largest number of positions the tables cover.
    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rotate_half_formula() -> Result<()> {
        let dev = Device::Cpu;
        let r = Rotary::new(4, 8, 10000.0, &dev)?;
        let x = Tensor::new(&[1f32, 2., 3., 4.], &dev)?.reshape((1, 1, 1, 4))?;
        let y: Vec<f32> = r.apply(&x, 3)?.flatten_all()?.to_vec1()?;
        // position 3: angles [3, 3 * 0.01]; y = x*cos + rotate_half(x)*sin, rotate_half = [-x2, x1]
        let (a0, a1) = (3f32, 0.03f32);
        let want = [
            1. * a0.cos() - 3. * a0.sin(),
            2. * a1.cos() - 4. * a1.sin(),
            3. * a0.cos() + 1. * a0.sin(),
            4. * a1.cos() + 2. * a1.sin(),
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {want:?}");
        }
        Ok(())
    }

    #[test]
    fn per_row_ids_match_offsets() -> Result<()> {
        let dev = Device::Cpu;
        let r = Rotary::new(4, 8, 10000.0, &dev)?;
        let x = Tensor::arange(0f32, 16., &dev)?.reshape((2, 1, 2, 4))?;
        let ids = Tensor::new(&[[0u32, 1], [3, 4]], &dev)?;
        let got = r.apply_ids(&x, &ids)?;
        let row0 = r.apply(&x.narrow(0, 0, 1)?, 0)?;
        let row1 = r.apply(&x.narrow(0, 1, 1)?, 3)?;
        let want = Tensor::cat(&[row0, row1], 0)?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        Ok(())
    }
}
