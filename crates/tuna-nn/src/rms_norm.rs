//! RMS normalisation with a weight (Llama's `RMSNorm`).

use crate::ops;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// RMSNorm over the last dimension.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Loads `weight` of size `dim`.
    pub fn load(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps: eps as f32,
        })
    }

    /// Visits `weight` under `prefix`.
    pub fn visit(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>,
    ) -> Result<()> {
        f(&format!("{prefix}.weight"), &mut self.weight)
    }

    /// Normalises `x` (..., dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm(x, &self.weight, self.eps)
    }
}
