//! The network of a loaded model, one of the families, and the operations every family offers
//! by name (visiting tensors and linear layers, sublayer hooks, blocks, embeddings), for
//! methods and workflows that do not care which family it is.

use crate::bert::Bert;
use crate::ctx::Ctx;
use crate::llama::{Llama, VocabVisitor};
use candle_core::{Result, Tensor};
use std::ops::Range;
use tuna_nn::{LinearVisitor, Sublayer, SublayerHook, Visitor, Weight};

/// The network of a loaded model.
pub enum Network {
    Bert(Bert),
    Llama(Llama),
}

/// The same operations on either family, for methods that do not care which it is.
impl Network {
    /// Visits every tensor by key name (see [`crate::bert::Bert::visit`]).
    pub fn visit(&mut self, f: &mut Visitor) -> Result<()> {
        match self {
            Network::Bert(m) => m.visit(f),
            Network::Llama(m) => m.visit(f),
        }
    }

    /// Visits every linear layer of the blocks by module name.
    pub fn linears(&mut self, f: &mut LinearVisitor) -> Result<()> {
        match self {
            Network::Bert(m) => m.linears(f),
            Network::Llama(m) => m.linears(f),
        }
    }

    /// Puts `hook` on sublayer `at` of block `block`.
    pub fn set_hook(&mut self, block: usize, at: Sublayer, hook: Box<dyn SublayerHook>) {
        match self {
            Network::Bert(m) => m.set_hook(block, at, hook),
            Network::Llama(m) => m.set_hook(block, at, hook),
        }
    }

    /// Visits the (vocabulary, hidden) weights by key name, tensors or kept in their stored
    /// type (see [`Llama::vocab_weights`]); encoders keep theirs as tensors and visit none.
    pub fn vocab_weights(&mut self, f: &mut VocabVisitor) -> Result<()> {
        match self {
            Network::Bert(_) => Ok(()),
            Network::Llama(m) => m.vocab_weights(f),
        }
    }

    /// Decodes every weight kept quantised into an f32 tensor (before writing a checkpoint, or
    /// training the base weights).
    pub fn dequantise(&mut self) -> Result<()> {
        self.dequantise_where(&|_| true)
    }

    /// Decodes the weights kept in their stored type whose key name `pick` accepts (the ones a
    /// method trains, or a file replaces): a stored weight is not a tensor and is not visited.
    pub fn dequantise_where(&mut self, pick: &dyn Fn(&str) -> bool) -> Result<()> {
        self.linears(&mut |name, l| match pick(&format!("{name}.weight")) {
            true => l.dequantise(),
            false => Ok(()),
        })?;
        self.vocab_weights(&mut |name, w| {
            if w.is_quantised() && pick(name) {
                *w = Weight::Dense(w.dense()?);
            }
            Ok(())
        })
    }

    /// Folds every linear layer's weight delta into its weights.
    pub fn merge_deltas(&mut self) -> Result<()> {
        self.linears(&mut |_, l| l.merge_delta())?;
        // Re-fuse products that depend on the merged weights.
        self.visit(&mut |_, _| Ok(()))
    }

    /// The device of the weights.
    pub fn device(&self) -> &candle_core::Device {
        match self {
            Network::Bert(m) => m.device(),
            Network::Llama(m) => m.device(),
        }
    }

    /// Hidden size.
    pub fn hidden_size(&self) -> usize {
        match self {
            Network::Bert(m) => m.config().hidden_size,
            Network::Llama(m) => m.config().hidden_size,
        }
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        match self {
            Network::Bert(m) => m.config().num_hidden_layers,
            Network::Llama(m) => m.config().num_hidden_layers,
        }
    }

    /// Key prefix of block `i`, ending without a dot.
    pub fn block_name(&self, i: usize) -> String {
        match self {
            Network::Bert(m) => m.block_name(i),
            Network::Llama(m) => m.block_name(i),
        }
    }

    /// Key names of the norm after the last block (decoders), trained with the last blocks.
    pub fn final_norm_names(&self) -> Vec<String> {
        match self {
            Network::Bert(_) => vec![],
            Network::Llama(_) => vec!["model.norm.weight".into()],
        }
    }

    /// Key/value heads and head size, for prefix tuning.
    pub fn kv_shape(&self) -> (usize, usize) {
        match self {
            Network::Bert(m) => {
                let c = m.config();
                (c.num_attention_heads, c.hidden_size / c.num_attention_heads)
            }
            Network::Llama(m) => (m.config().kv_heads(), m.config().head_size()),
        }
    }

    /// Token embeddings (B, T) -> (B, T, H).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Network::Bert(m) => m.embed(ids),
            Network::Llama(m) => m.embed(ids),
        }
    }

    /// Token embeddings -> input of the first block (BERT adds positions and normalises).
    pub fn prepare(&self, x: &Tensor, type_ids: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
        match self {
            Network::Bert(m) => m.prepare(x, type_ids, ctx),
            Network::Llama(_) => Ok(x.clone()),
        }
    }

    /// Runs `blocks` on `h`.
    pub fn run_blocks(&self, h: &Tensor, blocks: Range<usize>, ctx: &mut Ctx) -> Result<Tensor> {
        match self {
            Network::Bert(m) => m.run_blocks(h, blocks, ctx),
            Network::Llama(m) => m.run_blocks(h, blocks, ctx),
        }
    }

    /// Last block's output -> final hidden states (decoders apply their final norm).
    pub fn finish(&self, h: &Tensor) -> Result<Tensor> {
        match self {
            Network::Bert(_) => Ok(h.clone()),
            Network::Llama(m) => m.final_norm(h),
        }
    }
}
