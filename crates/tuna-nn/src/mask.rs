//! Additive attention masks built from a padding mask (1 = token, 0 = padding).

use candle_core::{DType, Device, Result, Tensor};

/// The value added to scores of masked positions (finite, so fully masked rows stay defined).
pub const MASKED: f32 = -1e9;

/// Key-padding mask for bidirectional attention: (B, T) of 0/1 -> (B, 1, 1, T) additive.
pub fn padding_mask(mask: &Tensor) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let m = mask.to_dtype(DType::F32)?;
    ((1.0 - m)? * MASKED as f64)?.reshape((b, 1, 1, t))
}

/// Causal mask for `tq` new positions after `past` cached ones, combined with the key-padding
/// mask when given ((B, past + tq) of 0/1). Output (B or 1, 1, tq, past + tq), additive.
pub fn causal_mask(tq: usize, past: usize, keys: Option<&Tensor>, dev: &Device) -> Result<Tensor> {
    let tk = past + tq;
    let data: Vec<f32> = (0..tq)
        .flat_map(|i| (0..tk).map(move |j| if j > past + i { MASKED } else { 0.0 }))
        .collect();
    let causal = Tensor::from_vec(data, (1, 1, tq, tk), dev)?;
    match keys {
        Some(k) => causal.broadcast_add(&padding_mask(k)?)?.clamp(MASKED, 0f32),
        None => Ok(causal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_with_padding() -> Result<()> {
        let dev = Device::Cpu;
        let keys = Tensor::new(&[[1u32, 1, 0]], &dev)?;
        let m: Vec<Vec<f32>> = causal_mask(3, 0, Some(&keys), &dev)?
            .squeeze(0)?
            .squeeze(0)?
            .to_vec2()?;
        assert_eq!(m[0], vec![0., MASKED, MASKED]);
        assert_eq!(m[1], vec![0., 0., MASKED]);
        assert_eq!(m[2], vec![0., 0., MASKED]);
        let m: Vec<Vec<f32>> = causal_mask(1, 2, None, &dev)?
            .squeeze(0)?
            .squeeze(0)?
            .to_vec2()?;
        assert_eq!(m, vec![vec![0., 0., 0.]]);
        Ok(())
    }
}
