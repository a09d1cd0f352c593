//! Walking a network's tensors and linear layers by their Hugging Face / PEFT key names: how
//! methods make weights trainable, attach their parts, save and load them, and merge.

use crate::Linear;
use candle_core::{Result, Tensor};

/// Called with each tensor's key name; may replace the tensor (with a trainable variable,
/// loaded values, ...).
pub type Visitor<'a> = dyn FnMut(&str, &mut Tensor) -> Result<()> + 'a;

/// Called with each linear layer's module name (`encoder.layer.0.attention.self.query`).
pub type LinearVisitor<'a> = dyn FnMut(&str, &mut Linear) -> Result<()> + 'a;
