//! BERT-style encoders: BERT, MiniLM, and DistilBERT's key names.
//!
//! Mirrors transformers' `models/bert/modeling_bert.py` (post-LayerNorm blocks) and
//! `models/distilbert/modeling_distilbert.py`; module paths follow the checkpoint's key tree.

use crate::ctx::Ctx;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::Deserialize;
use std::ops::Range;
use tuna_nn::attention::attention_rows;
use tuna_nn::attention_packed;
use tuna_nn::fallback::off_kernel;
use tuna_nn::mask::padding_mask;
use tuna_nn::{
    linear, Activation, Hooks, LayerNorm, Linear, LinearVisitor, Sublayer, SublayerHook, Visitor,
};

/// The fields of a BERT `config.json` that the model needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(skip)]
    pub flavor: Flavor,
}

fn default_type_vocab() -> usize {
    2
}
fn default_ln_eps() -> f64 {
    1e-12
}

/// DistilBERT's `config.json`, converted into a [`BertConfig`].
#[derive(Debug, Clone, Deserialize)]
pub struct DistilBertConfig {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub hidden_dim: usize,
    pub activation: Activation,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub pad_token_id: u32,
}

impl From<DistilBertConfig> for BertConfig {
    fn from(c: DistilBertConfig) -> Self {
        BertConfig {
            vocab_size: c.vocab_size,
            hidden_size: c.dim,
            num_hidden_layers: c.n_layers,
            num_attention_heads: c.n_heads,
            intermediate_size: c.hidden_dim,
            hidden_act: c.activation,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: 0,
            layer_norm_eps: 1e-12,
            pad_token_id: c.pad_token_id,
            flavor: Flavor::DistilBert,
        }
    }
}

/// Which key names the checkpoint uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavor {
    #[default]
    Bert,
    DistilBert,
}

/// Sub-module names of one flavour, relative to the model root.
struct Names {
    layers: &'static str,
    query: &'static str,
    key: &'static str,
    value: &'static str,
    attn_out: &'static str,
    attn_norm: &'static str,
    ffn_in: &'static str,
    ffn_out: &'static str,
    out_norm: &'static str,
}

impl Flavor {
    fn names(self) -> Names {
        match self {
            Flavor::Bert => Names {
                layers: "encoder.layer",
                query: "attention.self.query",
                key: "attention.self.key",
                value: "attention.self.value",
                attn_out: "attention.output.dense",
                attn_norm: "attention.output.LayerNorm",
                ffn_in: "intermediate.dense",
                ffn_out: "output.dense",
                out_norm: "output.LayerNorm",
            },
            Flavor::DistilBert => Names {
                layers: "transformer.layer",
                query: "attention.q_lin",
                key: "attention.k_lin",
                value: "attention.v_lin",
                attn_out: "attention.out_lin",
                attn_norm: "sa_layer_norm",
                ffn_in: "ffn.lin1",
                ffn_out: "ffn.lin2",
                out_norm: "output_layer_norm",
            },
        }
    }

    /// The prefix task checkpoints put before the encoder (`bert.`, `distilbert.`).
    fn root_prefix(self) -> &'static str {
        match self {
            Flavor::Bert => "bert",
            Flavor::DistilBert => "distilbert",
        }
    }
}

/// One post-LayerNorm encoder block.
struct Block {
    query: Linear,
    key: Linear,
    value: Linear,
    /// `query`, `key` and `value` fused into one (H -> 3H) product while their base weights
    /// are frozen; rebuilt by [`Block::refresh`].
    qkv: Option<Linear>,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: LayerNorm,
    /// Methods' transformations of the sublayer outputs.
    hooks: Hooks,
    n_heads: usize,
    act: Activation,
}

impl Block {
    fn load(cfg: &BertConfig, n: &Names, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let mut block = Self {
            query: linear(h, h, vb.pp(n.query))?,
            key: linear(h, h, vb.pp(n.key))?,
            value: linear(h, h, vb.pp(n.value))?,
            qkv: None,
            attn_out: linear(h, h, vb.pp(n.attn_out))?,
            attn_norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp(n.attn_norm))?,
            ffn_in: linear(h, cfg.intermediate_size, vb.pp(n.ffn_in))?,
            ffn_out: linear(cfg.intermediate_size, h, vb.pp(n.ffn_out))?,
            out_norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp(n.out_norm))?,
            hooks: Hooks::default(),
            n_heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
        };
        block.refresh()?;
        Ok(block)
    }

    /// Re-fuses q/k/v after their tensors changed; a trainable base weight is not fused (the
    /// gradient must reach it), so the product is then formed on every call.
    fn refresh(&mut self) -> Result<()> {
        let parts = [&self.query, &self.key, &self.value];
        let tracked = parts
            .iter()
            .any(|l| l.weight().track_op() || l.bias().is_some_and(|b| b.track_op()));
        self.qkv = if tracked {
            None
        } else {
            Some(fuse_base(&parts)?)
        };
        Ok(())
    }

    fn visit(&mut self, n: &Names, prefix: &str, f: &mut Visitor) -> Result<()> {
        self.query.visit(&format!("{prefix}.{}", n.query), f)?;
        self.key.visit(&format!("{prefix}.{}", n.key), f)?;
        self.value.visit(&format!("{prefix}.{}", n.value), f)?;
        self.attn_out
            .visit(&format!("{prefix}.{}", n.attn_out), f)?;
        self.attn_norm
            .visit(&format!("{prefix}.{}", n.attn_norm), f)?;
        self.ffn_in.visit(&format!("{prefix}.{}", n.ffn_in), f)?;
        self.ffn_out.visit(&format!("{prefix}.{}", n.ffn_out), f)?;
        self.out_norm
            .visit(&format!("{prefix}.{}", n.out_norm), f)?;
        self.hooks.visit(prefix, f)?;
        self.refresh()
    }

    fn linears(&mut self, n: &Names, prefix: &str, f: &mut LinearVisitor) -> Result<()> {
        f(&format!("{prefix}.{}", n.query), &mut self.query)?;
        f(&format!("{prefix}.{}", n.key), &mut self.key)?;
        f(&format!("{prefix}.{}", n.value), &mut self.value)?;
        f(&format!("{prefix}.{}", n.attn_out), &mut self.attn_out)?;
        f(&format!("{prefix}.{}", n.ffn_in), &mut self.ffn_in)?;
        f(&format!("{prefix}.{}", n.ffn_out), &mut self.ffn_out)?;
        self.refresh()
    }

    /// `x`: (B, T, H); `mask`: additive (B, 1, 1, P+T); `prefix`: key and value prefixes
    /// (B, nH, P, D) of prefix tuning.
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        prefix: Option<&(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let ctx = self.context(x, mask, prefix)?; // (B, T, H)
        let a = self
            .hooks
            .apply(Sublayer::Attention, self.attn_out.forward(&ctx)?)?;
        let x = self.attn_norm.forward(&(a + x)?)?;
        let ff = self
            .ffn_out
            .forward(&self.act.forward(&self.ffn_in.forward(&x)?)?)?;
        let ff = self.hooks.apply(Sublayer::FeedForward, ff)?;
        self.out_norm.forward(&(ff + x)?)
    }
}

impl Block {
    /// The attention's merged heads (B, T, H) for `x` (B, T, H).
    fn context(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        prefix: Option<&(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let parts = [&self.query, &self.key, &self.value];
        let heads = (self.n_heads, self.n_heads);
        // In training, one op for the fused product with its low-rank updates and one for the
        // attention on the packed result: the input's gradient is one product and one buffer.
        // Trained base weights (full finetuning, the last blocks) are fused on every call.
        let qkv = match (&self.qkv, prefix) {
            (_, Some(_)) => None,
            (Some(fused), None) => fused.fused_low_rank(&parts, x)?,
            (None, None) if !off_kernel(x) && parts.iter().all(|l| l.delta.is_none()) => {
                Some(Linear::fuse(&parts.map(Linear::base))?.forward(x)?)
            }
            (None, None) => None,
        };
        if let Some(qkv) = qkv.filter(|t| t.track_op()) {
            if attention_packed::supported(&qkv, heads, mask) {
                return attention_packed::attention_packed(&qkv, heads, mask);
            }
        }
        let (q, k, v) = match &self.qkv {
            Some(fused) if !x.track_op() => {
                let h = x.dim(2)?;
                let qkv = fused.forward_base(x)?; // (B, T, 3H)
                let part = |i: usize, l: &Linear| l.finish(x, qkv.narrow(2, i * h, h)?);
                (
                    part(0, &self.query)?,
                    part(1, &self.key)?,
                    part(2, &self.value)?,
                )
            }
            // When a gradient reaches the input or the base weights, three products: slices
            // of one fused product would each send a zero-padded full-width gradient back.
            _ => (
                self.query.forward(x)?,
                self.key.forward(x)?,
                self.value.forward(x)?,
            ),
        };
        attention_rows(&q, &k, &v, self.n_heads, mask, prefix)
    }
}

/// One product for q, k and v (base weights only; each part's delta is applied to its slice).
fn fuse_base(parts: &[&Linear]) -> Result<Linear> {
    let plain: Vec<Linear> = parts.iter().map(|l| l.base()).collect();
    Linear::fuse(&plain)
}

/// A BERT-style encoder returning the last hidden states.
pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    emb_norm: LayerNorm,
    blocks: Vec<Block>,
    cfg: BertConfig,
    /// `bert.` / `distilbert.` when the checkpoint's keys have that prefix, else empty.
    root: String,
}

impl Bert {
    /// Loads from a var builder rooted at the checkpoint root; a `bert.`/`distilbert.` prefix is
    /// detected and remembered for saving.
    pub fn load(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let prefix = cfg.flavor.root_prefix();
        let (vb, root) =
            if vb.contains_tensor(&format!("{prefix}.embeddings.word_embeddings.weight")) {
                (vb.pp(prefix), format!("{prefix}."))
            } else {
                (vb, String::new())
            };
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let emb = |n: usize, name: &str| -> Result<Embedding> {
            Ok(Embedding::new(e.pp(name).get((n, h), "weight")?, h))
        };
        let token_type = match cfg.type_vocab_size {
            0 => None,
            n => Some(emb(n, "token_type_embeddings")?),
        };
        let names = cfg.flavor.names();
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(cfg, &names, vb.pp(names.layers).pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word: emb(cfg.vocab_size, "word_embeddings")?,
            position: emb(cfg.max_position_embeddings, "position_embeddings")?,
            token_type,
            emb_norm: LayerNorm::load(h, cfg.layer_norm_eps, e.pp("LayerNorm"))?,
            blocks,
            cfg: cfg.clone(),
            root,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// The prefix of every key name (`bert.` or empty).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Key prefix of block `i` (`encoder.layer.3`), with the root prefix.
    pub fn block_name(&self, i: usize) -> String {
        format!("{}{}.{i}", self.root, self.cfg.flavor.names().layers)
    }

    /// Token embeddings only: (B, T) ids -> (B, T, H). Soft prompts enter after this.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.word.forward(ids)
    }

    /// Adds position and token-type embeddings and normalises: the input of the first block.
    /// Positions start at `ctx.position_offset`.
    pub fn prepare(&self, x: &Tensor, type_ids: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let end = ctx.position_offset + t;
        if end > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "sequence of {end} positions is longer than the model's {} positions",
                self.cfg.max_position_embeddings
            );
        }
        let pos = Tensor::arange(ctx.position_offset as u32, end as u32, x.device())?;
        let mut h = x.broadcast_add(&self.position.forward(&pos)?)?;
        if let Some(tt) = &self.token_type {
            let ids = match type_ids {
                Some(ids) => ids.clone(),
                None => Tensor::zeros((b, t), candle_core::DType::U32, x.device())?,
            };
            h = (h + tt.forward(&ids)?)?;
        }
        self.emb_norm.forward(&h)
    }

    /// Runs `blocks` on `h` (B, T, H) from [`Bert::prepare`] or an earlier block.
    pub fn run_blocks(&self, h: &Tensor, blocks: Range<usize>, ctx: &mut Ctx) -> Result<Tensor> {
        let mask = ctx.key_mask()?.map(|m| padding_mask(&m)).transpose()?;
        let mut h = h.clone();
        if blocks.start == 0 {
            ctx.capture(&h);
        }
        for i in blocks {
            let block = &self.blocks[i];
            let prefix = ctx.prefix.as_ref().map(|p| &p[i]);
            h = block.forward(&h, mask.as_ref(), prefix)?;
            ctx.capture(&h);
        }
        Ok(h)
    }

    /// Embeddings through every block. `x`: (B, T, H) from [`Bert::embed`]; returns the last
    /// hidden states (B, T, H).
    pub fn forward_embeds(
        &self,
        x: &Tensor,
        type_ids: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let h = self.prepare(x, type_ids, ctx)?;
        self.run_blocks(&h, 0..self.blocks.len(), ctx)
    }

    /// Ids to last hidden states.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        self.forward_embeds(&self.embed(ids)?, type_ids, ctx)
    }

    /// Visits every tensor (weights and the methods' parts) by its Hugging Face / PEFT key name.
    pub fn visit(&mut self, f: &mut Visitor) -> Result<()> {
        let (h, root) = (self.cfg.hidden_size, self.root.clone());
        let mut emb = |e: &mut Embedding, name: &str| -> Result<()> {
            let mut t = e.embeddings().clone();
            f(&format!("{root}embeddings.{name}.weight"), &mut t)?;
            *e = Embedding::new(t, h);
            Ok(())
        };
        emb(&mut self.word, "word_embeddings")?;
        emb(&mut self.position, "position_embeddings")?;
        if let Some(tt) = &mut self.token_type {
            emb(tt, "token_type_embeddings")?;
        }
        self.emb_norm
            .visit(&format!("{root}embeddings.LayerNorm"), f)?;
        let names = self.cfg.flavor.names();
        for i in 0..self.blocks.len() {
            let prefix = self.block_name(i);
            self.blocks[i].visit(&names, &prefix, f)?;
        }
        Ok(())
    }

    /// Visits every linear layer of the blocks by module name (weight-delta targets).
    pub fn linears(&mut self, f: &mut LinearVisitor) -> Result<()> {
        let names = self.cfg.flavor.names();
        for i in 0..self.blocks.len() {
            let prefix = self.block_name(i);
            self.blocks[i].linears(&names, &prefix, f)?;
        }
        Ok(())
    }

    /// Puts `hook` on sublayer `at` of block `block`.
    pub fn set_hook(&mut self, block: usize, at: Sublayer, hook: Box<dyn SublayerHook>) {
        self.blocks[block].hooks.set(at, hook);
    }

    /// The device of the weights.
    pub fn device(&self) -> &candle_core::Device {
        self.word.embeddings().device()
    }
}
