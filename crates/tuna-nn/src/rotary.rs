//! Rotary position embeddings (RoPE), Hugging Face's half-split layout.

use crate::ops;
use candle_core::{DType, Device, Result, Tensor};

/// Positions whose cos/sin rows are computed once at load; longer sequences compute the rows
/// they need when they run. A model's `max_position_embeddings` comes from its (untrusted)
/// config, so it never sizes an allocation by itself.
const TABLE_POSITIONS: usize = 8192;

/// Cos/sin tables for positions `0..max_positions` (the first [`TABLE_POSITIONS`] precomputed).
#[derive(Debug, Clone)]
pub struct Rotary {
    /// (1, D/2) inverse frequencies.
    inv_freq: Tensor,
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
}

impl Rotary {
    /// Tables for head size `head_dim` and base `theta` (`rope_theta`).
    pub fn new(head_dim: usize, max_positions: usize, theta: f64, dev: &Device) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, head_dim / 2), dev)?;
        let table = max_positions.min(TABLE_POSITIONS);
        let pos = Tensor::arange(0u32, table as u32, dev)?;
        let (cos, sin) = angles(&inv_freq, &pos)?;
        Ok(Self {
            inv_freq,
            cos,
            sin,
            max_positions,
        })
    }

    /// Rotates `x` (B, H, T, D) as positions `offset..offset + T`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let t = x.dim(2)?;
        if offset + t <= self.cos.dim(0)? {
            let cos = self.cos.narrow(0, offset, t)?;
            let sin = self.sin.narrow(0, offset, t)?;
            return ops::rope(x, &cos, &sin);
        }
        let pos = Tensor::arange(offset as u32, (offset + t) as u32, x.device())?;
        let (cos, sin) = angles(&self.inv_freq, &pos)?;
        ops::rope(x, &cos, &sin)
    }

    /// Rotates `x` (B, H, T, D) at per-row positions `ids` (B, T) u32 (left-padded batches).
    pub fn apply_ids(&self, x: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let half = self.cos.dim(1)?;
        let in_table = match flat.elem_count() {
            0 => true,
            _ => (flat.max(0)?.to_scalar::<u32>()? as usize) < self.cos.dim(0)?,
        };
        let (cos, sin) = if in_table {
            (
                self.cos.index_select(&flat, 0)?,
                self.sin.index_select(&flat, 0)?,
            )
        } else {
            angles(&self.inv_freq, &flat)?
        };
        ops::rope(x, &cos.reshape((b, t, half))?, &sin.reshape((b, t, half))?)
    }

    /// Largest number of positions the model takes.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
}

/// Cos and sin of `positions` (N,) u32 times `inv_freq` (1, D/2): two (N, D/2) tensors.
fn angles(inv_freq: &Tensor, positions: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = positions.dim(0)?;
    let pos = positions.to_dtype(DType::F32)?.reshape((n, 1))?;
    let freqs = pos.broadcast_mul(inv_freq)?; // (N, D/2)
    Ok((freqs.cos()?, freqs.sin()?))
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

    #[test]
    fn positions_past_the_table_match_a_full_table() -> Result<()> {
        let dev = Device::Cpu;
        let big = TABLE_POSITIONS + 16;
        let lazy = Rotary::new(8, big, 10000.0, &dev)?;
        assert_eq!(lazy.max_positions(), big);
        assert_eq!(lazy.cos.dim(0)?, TABLE_POSITIONS);
        let pos = Tensor::arange(0u32, big as u32, &dev)?;
        let (cos, sin) = angles(&lazy.inv_freq, &pos)?;
        let x = Tensor::arange(0f32, 48., &dev)?.reshape((1, 2, 3, 8))?;
        let offset = TABLE_POSITIONS - 1;
        let want = ops::rope(&x, &cos.narrow(0, offset, 3)?, &sin.narrow(0, offset, 3)?)?;
        let got = lazy.apply(&x, offset)?;
        assert_eq!(
            got.flatten_all()?.to_vec1::<f32>()?,
            want.flatten_all()?.to_vec1::<f32>()?
        );
        let ids = Tensor::new(
            &[[offset as u32, offset as u32 + 1, offset as u32 + 2]],
            &dev,
        )?;
        let got = lazy.apply_ids(&x.narrow(1, 0, 1)?, &ids)?;
        let want = want.narrow(1, 0, 1)?;
        assert_eq!(
            got.flatten_all()?.to_vec1::<f32>()?,
            want.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn a_huge_context_length_allocates_only_the_table() -> Result<()> {
        let r = Rotary::new(64, usize::MAX / 2, 10000.0, &Device::Cpu)?;
        assert_eq!(r.cos.dims(), &[TABLE_POSITIONS, 32]);
        Ok(())
    }
}
