//! The weight of a linear layer: an f32 (or other dtype) tensor, or a frozen matrix kept in its
//! stored quantised type ([`crate::quant`]) whose products decode it on the fly.

use crate::quant::QuantMatrix;
use candle_core::{Result, Tensor};
use std::sync::Arc;

/// A linear layer's weight, (out, in).
#[derive(Debug, Clone)]
pub enum Weight {
    /// A tensor: frozen, or trainable when it tracks a gradient.
    Dense(Tensor),
    /// Frozen, in its stored type (GGUF blocks, f16, bf16); shared between copies of a layer.
    Quant(Arc<QuantMatrix>),
}

impl Weight {
    /// (out, in).
    pub fn dims2(&self) -> Result<(usize, usize)> {
        match self {
            Weight::Dense(t) => t.dims2(),
            Weight::Quant(q) => Ok((q.row_count(), q.col_count())),
        }
    }

    /// True when the weight is a tensor in the gradient graph (a quantised one never is).
    pub fn track_op(&self) -> bool {
        matches!(self, Weight::Dense(t) if t.track_op())
    }

    /// The tensor, when the weight is one.
    pub fn tensor(&self) -> Option<&Tensor> {
        match self {
            Weight::Dense(t) => Some(t),
            Weight::Quant(_) => None,
        }
    }

    /// The weight as an f32 tensor: the tensor itself, or the quantised one decoded (a new
    /// (out, in) buffer, for merging and for methods that need the values).
    pub fn dense(&self) -> Result<Tensor> {
        match self {
            Weight::Dense(t) => Ok(t.clone()),
            Weight::Quant(q) => q.dequantize(),
        }
    }

    /// True for a weight kept in its stored quantised type.
    pub fn is_quantised(&self) -> bool {
        matches!(self, Weight::Quant(_))
    }
}
