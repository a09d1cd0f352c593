//! The hot-path kernels, kept in one place.
//!
//! These call candle's fused CPU/GPU kernels, which are fast but have **no backward**: a tensor
//! that goes through them receives no gradient. They are used for inference (embedding,
//! scoring, generation). Training code must use differentiable versions; a contract test in the
//! training crate checks that every trainable parameter receives a gradient.

use candle_core::{Result, Tensor};

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax_last_dim(x)
}

/// Layer normalisation over the last dimension: `(x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    candle_nn::ops::layer_norm(&x.contiguous()?, w, b, eps)
}

/// RMS normalisation over the last dimension: `x / sqrt(mean(x^2) + eps) * w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    candle_nn::ops::rms_norm(&x.contiguous()?, w, eps)
}

/// Rotary position embedding, half-split layout (Hugging Face's `rotate_half`).
/// `x`: (B, H, T, D); `cos`, `sin`: (T, D/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    #[test]
    fn fused_ops_match_plain_formulas() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2., 3., 4.], [-1., 0.5, 0., 2.]], &dev)?;
        let w = Tensor::new(&[1f32, 2., 0.5, 1.], &dev)?;
        let b = Tensor::new(&[0f32, 1., 0., -1.], &dev)?;
        let plain_sm = candle_nn::ops::softmax(&x, D::Minus1)?;
        let diff = (softmax_last_dim(&x)? - plain_sm)?.abs()?.max_all()?;
        assert!(diff.to_scalar::<f32>()? < 1e-6);
        let plain_ln = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5)?;
        let diff = (layer_norm(&x, &w, &b, 1e-5)? - plain_ln)?
            .abs()?
            .max_all()?;
        assert!(diff.to_scalar::<f32>()? < 1e-5);
        let plain_rms = candle_nn::ops::rms_norm_slow(&x, &w, 1e-6)?;
        let diff = (rms_norm(&x, &w, 1e-6)? - plain_rms)?.abs()?.max_all()?;
        assert!(diff.to_scalar::<f32>()? < 1e-5);
        Ok(())
    }
}
