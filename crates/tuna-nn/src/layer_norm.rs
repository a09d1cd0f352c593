//! Layer normalisation with weight and bias (BERT's `LayerNorm`).

use crate::ops;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// LayerNorm over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (or the old `gamma` and `beta` names) of size `dim`.
    pub fn load(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let (weight, bias) = if vb.contains_tensor("weight") || !vb.contains_tensor("gamma") {
            (vb.get(dim, "weight")?, vb.get(dim, "bias")?)
        } else {
            (vb.get(dim, "gamma")?, vb.get(dim, "beta")?)
        };
        Ok(Self {
            weight,
            bias,
            eps: eps as f32,
        })
    }

    /// Visits `weight` and `bias` under `prefix`.
    pub fn visit(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>,
    ) -> Result<()> {
        f(&format!("{prefix}.weight"), &mut self.weight)?;
        f(&format!("{prefix}.bias"), &mut self.bias)
    }

    /// Normalises `x` (..., dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}
