//! The input seam: a method's part in front of the network (soft prompts are prepended to the
//! token embeddings, prefixes join every layer's keys and values through [`Ctx`]).

use candle_core::{Result, Tensor};
use tuna_models::Ctx;
use tuna_nn::Visitor;

/// One forward pass's input, as a method may change it.
pub struct Input {
    /// Token embeddings (B, T, H).
    pub embeds: Tensor,
    /// (B, T) of 0/1: real tokens.
    pub mask: Tensor,
    /// (B, T) token types (encoders).
    pub type_ids: Tensor,
    /// Leading output positions that are not the input's own tokens (virtual tokens).
    pub skip: usize,
}

/// A method's part that acts on the input embeddings and the forward pass's context.
pub trait InputHook: Send + Sync {
    /// Changes `input` and `ctx` before the first block.
    fn apply(&self, input: &mut Input, ctx: &mut Ctx) -> Result<()>;

    /// Visits the method's tensors by their PEFT key names.
    fn visit(&mut self, f: &mut Visitor) -> Result<()>;

    /// Turns the part into the form its adapter file stores (prefix tuning drops its
    /// reparameterisation MLP and keeps the table); done before saving and before loading a
    /// saved adapter.
    fn to_saved_form(&mut self) -> Result<()> {
        Ok(())
    }
}
