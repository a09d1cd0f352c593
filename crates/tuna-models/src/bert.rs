//! BERT-style encoders: BERT, MiniLM, and DistilBERT's key names.
//!
//! Mirrors transformers' `models/bert/modeling_bert.py` (post-LayerNorm blocks) and
//! `models/distilbert/modeling_distilbert.py`; module paths follow the checkpoint's key tree.

use crate::ctx::Ctx;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::Deserialize;
use tuna_nn::attention::{attention, merge_heads};
use tuna_nn::mask::padding_mask;
use tuna_nn::{linear, Activation, LayerNorm, Linear};

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
    /// `query`, `key` and `value` fused into one (H -> 3H) product, in that order.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: LayerNorm,
    n_heads: usize,
    act: Activation,
}

impl Block {
    fn load(cfg: &BertConfig, n: &Names, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let qkv = Linear::fuse(&[
            linear(h, h, vb.pp(n.query))?,
            linear(h, h, vb.pp(n.key))?,
            linear(h, h, vb.pp(n.value))?,
        ])?;
        Ok(Self {
            qkv,
            attn_out: linear(h, h, vb.pp(n.attn_out))?,
            attn_norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp(n.attn_norm))?,
            ffn_in: linear(h, cfg.intermediate_size, vb.pp(n.ffn_in))?,
            ffn_out: linear(cfg.intermediate_size, h, vb.pp(n.ffn_out))?,
            out_norm: LayerNorm::load(h, cfg.layer_norm_eps, vb.pp(n.out_norm))?,
            n_heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
        })
    }

    /// `x`: (B, T, H); `mask`: additive (B, 1, 1, T).
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, t, 3, self.n_heads, h / self.n_heads))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?; // (3, B, nH, T, D)
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let ctx = merge_heads(&attention(&q, &k, &v, mask)?)?; // (B, T, H)
        let x = self
            .attn_norm
            .forward(&(self.attn_out.forward(&ctx)? + x)?)?;
        let ff = self
            .ffn_out
            .forward(&self.act.forward(&self.ffn_in.forward(&x)?)?)?;
        self.out_norm.forward(&(ff + x)?)
    }
}

/// A BERT-style encoder returning the last hidden states.
pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    emb_norm: LayerNorm,
    blocks: Vec<Block>,
    cfg: BertConfig,
}

impl Bert {
    /// Loads from a var builder rooted at the checkpoint root; a `bert.`/`distilbert.` prefix is
    /// detected and skipped.
    pub fn load(cfg: &BertConfig, vb: VarBuilder) -> Result<Self> {
        let prefix = cfg.flavor.root_prefix();
        let vb = if vb.contains_tensor(&format!("{prefix}.embeddings.word_embeddings.weight")) {
            vb.pp(prefix)
        } else {
            vb
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
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Token embeddings only: (B, T) ids -> (B, T, H). Soft prompts enter after this.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.word.forward(ids)
    }

    /// Adds position and token-type embeddings, normalises, and runs every block.
    /// `x`: (B, T, H) from [`Bert::embed`]; returns the last hidden states (B, T, H).
    pub fn forward_embeds(
        &self,
        x: &Tensor,
        type_ids: Option<&Tensor>,
        ctx: &mut Ctx,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        if t > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "sequence of {t} tokens is longer than the model's {} positions",
                self.cfg.max_position_embeddings
            );
        }
        let pos = Tensor::arange(0u32, t as u32, x.device())?;
        let mut h = x.broadcast_add(&self.position.forward(&pos)?)?;
        if let Some(tt) = &self.token_type {
            let ids = match type_ids {
                Some(ids) => ids.clone(),
                None => Tensor::zeros((b, t), candle_core::DType::U32, x.device())?,
            };
            h = (h + tt.forward(&ids)?)?;
        }
        let mut h = self.emb_norm.forward(&h)?;
        ctx.capture(&h);
        let mask = ctx.mask.as_ref().map(padding_mask).transpose()?;
        for block in &self.blocks {
            h = block.forward(&h, mask.as_ref())?;
            ctx.capture(&h);
        }
        Ok(h)
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
}
