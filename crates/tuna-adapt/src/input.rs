//! The input seam: a method's part in front of the network (soft prompts are prepended to the
//! token embeddings, prefixes join every layer's keys and values through [`Ctx`]).

use candle_core::{Result, Tensor};
use tuna_models::{Batch, Ctx, Network, VirtualTokens};
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

    /// The method's part as the virtual tokens a decoder runs before every prompt when
    /// generating (with a key/value cache rather than through [`InputHook::apply`]).
    fn virtual_tokens(&self) -> Result<VirtualTokens>;

    /// Visits the method's tensors by their PEFT key names.
    fn visit(&mut self, f: &mut Visitor) -> Result<()>;

    /// Turns the part into the form its adapter file stores (prefix tuning drops its
    /// reparameterisation MLP and keeps the table); done before saving and before loading a
    /// saved adapter.
    fn to_saved_form(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Final hidden states (B, T, H) of a padded batch's own positions through `net` with the
/// method's input part `hook` (virtual tokens removed again).
pub fn hidden_states(net: &Network, hook: Option<&dyn InputHook>, batch: &Batch) -> Result<Tensor> {
    let mut ctx = Ctx::with_mask(&batch.mask);
    let mut input = Input {
        embeds: net.embed(&batch.ids)?,
        mask: batch.mask.clone(),
        type_ids: batch.type_ids.clone(),
        skip: 0,
    };
    if let Some(h) = hook {
        h.apply(&mut input, &mut ctx)?;
        ctx.mask = Some(input.mask.clone());
    }
    let h = net.prepare(&input.embeds, Some(&input.type_ids), &ctx)?;
    let h = net.run_blocks(&h, 0..net.num_blocks(), &mut ctx)?;
    let h = net.finish(&h)?;
    if input.skip > 0 {
        h.narrow(1, input.skip, batch.ids.dim(1)?)
    } else {
        Ok(h)
    }
}
