//! Walking a network's tensors by their Hugging Face / PEFT key names: how methods make
//! weights trainable, save and load them (linear layers are walked with
//! [`crate::linear::LinearVisitor`]).

use candle_core::{Result, Tensor};

/// Called with each tensor's key name; may replace the tensor (with a trainable variable,
/// loaded values, ...).
pub type Visitor<'a> = dyn FnMut(&str, &mut Tensor) -> Result<()> + 'a;
