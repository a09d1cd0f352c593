//! Walking a model's tensors and linear layers by their Hugging Face / PEFT key names: how
//! methods make weights trainable, attach LoRA, save and load adapters, and merge.

use candle_core::{Result, Tensor};
use tuna_nn::Linear;

/// Called with each tensor's key name; may replace the tensor (with a trainable variable,
/// loaded values, ...).
pub type Visitor<'a> = dyn FnMut(&str, &mut Tensor) -> Result<()> + 'a;

/// Called with each linear layer's module name (`encoder.layer.0.attention.self.query`).
pub type LinearVisitor<'a> = dyn FnMut(&str, &mut Linear) -> Result<()> + 'a;

use crate::ctx::Ctx;
use crate::registry::Network;
use std::ops::Range;
use tuna_core::Rng;
use tuna_nn::Activation;

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

    /// Adds bottleneck adapters to every block.
    pub fn add_adapters(&mut self, size: usize, act: Activation, rng: &mut Rng) -> Result<()> {
        match self {
            Network::Bert(m) => m.add_adapters(size, act, rng),
            Network::Llama(m) => m.add_adapters(size, act, rng),
        }
    }

    /// Folds every LoRA update into its base weight.
    pub fn merge_lora(&mut self) -> Result<()> {
        self.linears(&mut |_, l| l.merge_lora())?;
        // Re-fuse products that depend on the merged weights.
        self.visit(&mut |_, _| Ok(()))
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
