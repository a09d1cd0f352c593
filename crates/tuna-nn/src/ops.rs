//! The hot-path kernels, kept in one place.
//!
//! candle's fused CPU/GPU kernels are fast but have **no backward**. Each op here therefore
//! looks at its inputs: when none of them is part of a gradient graph (inference, or a frozen
//! part of a model) it runs candle's kernel; otherwise tuna's fused kernels with a backward
//! ([`crate::train_kernels`], CPU f32), or the same formula in differentiable tensor ops on other
//! devices (logged once per op by [`crate::fallback`]). A contract test in the training crate checks that every trainable parameter of every
//! method receives a gradient.

use crate::{fallback, rope_op, swiglu, train_kernels};
use candle_core::{Result, Tensor, D};

/// True when a gradient must flow through any of `ts`.
fn tracked(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| t.track_op())
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !x.track_op() {
        return candle_nn::ops::softmax_last_dim(x);
    }
    if train_kernels::supported(&[x]) {
        return train_kernels::softmax_last_dim(x);
    }
    fallback::note("tuna-softmax", x, "candle's max, exp, sum and div");
    // The max only keeps exp() in range; softmax does not depend on it, so no gradient through it.
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Layer normalisation over the last dimension: `(x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    if tracked(&[x, w, b]) {
        if train_kernels::supported(&[x, w, b]) {
            return train_kernels::layer_norm(x, w, b, eps);
        }
        fallback::note("tuna-layer-norm", x, "candle_nn's layer_norm_slow");
        return candle_nn::ops::layer_norm_slow(x, w, b, eps);
    }
    candle_nn::ops::layer_norm(&x.contiguous()?, w, b, eps)
}

/// RMS normalisation over the last dimension: `x / sqrt(mean(x^2) + eps) * w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    if tracked(&[x, w]) {
        if train_kernels::supported(&[x, w]) {
            return train_kernels::rms_norm(x, w, eps);
        }
        fallback::note("tuna-rms-norm", x, "candle_nn's rms_norm_slow");
        return candle_nn::ops::rms_norm_slow(x, w, eps);
    }
    candle_nn::ops::rms_norm(&x.contiguous()?, w, eps)
}

/// Rotary position embedding, half-split layout (Hugging Face's `rotate_half`).
/// `x`: (B, H, T, D); `cos`, `sin`: (T, D/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        if rope_op::supported(x, cos, sin) {
            return rope_op::rope(x, cos, sin);
        }
        fallback::note("tuna-rope", x, "candle_nn's rope_slow");
        return candle_nn::rotary_emb::rope_slow(x, cos, sin);
    }
    candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)
}

/// `silu(gate) * up` (the gated feed-forward product of Llama-family models).
/// One vectorised pass where the inputs are f32 on the CPU (`swiglu`), tracked or not: in
/// a decoding step candle's `silu` took a scalar `exp` per element.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if swiglu::supported(gate, up) {
        return swiglu::swiglu(gate, up);
    }
    if tracked(&[gate, up]) {
        fallback::note("tuna-swiglu", gate, "candle's silu and mul");
    }
    gate.silu()? * up
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

    #[test]
    fn tracked_inputs_take_the_differentiable_path() -> Result<()> {
        let dev = Device::Cpu;
        let x = candle_core::Var::new(&[[1f32, 2., 3., 4.], [-1., 0.5, 0., 2.]], &dev)?;
        let w = Tensor::new(&[1f32, 2., 0.5, 1.], &dev)?;
        let b = Tensor::new(&[0f32, 1., 0., -1.], &dev)?;
        let y = (softmax_last_dim(&x)? + layer_norm(&x, &w, &b, 1e-5)? + rms_norm(&x, &w, 1e-6)?)?;
        let fused = (softmax_last_dim(&x.detach())?
            + layer_norm(&x.detach(), &w, &b, 1e-5)?
            + rms_norm(&x.detach(), &w, 1e-6)?)?;
        let diff = (&y - fused)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "paths differ by {diff}");
        let grads = y.sum_all()?.backward()?;
        let g = grads.get(&x).expect("x gets a gradient");
        assert!(g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        Ok(())
    }
}
