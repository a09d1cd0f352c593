//! Llama-style decoders: Llama, SmolLM2, Qwen2 (q/k/v biases), with grouped-query attention and
//! rotary positions. Returns hidden states for every position; [`Llama::logits`] maps them to the
//! vocabulary.
//!
//! Mirrors transformers' `models/llama/modeling_llama.py`; module paths follow its key tree
//! (`model.layers.N.self_attn.q_proj`, ...). GGUF files are renamed to these keys at load.

use crate::ctx::Ctx;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::{Deserialize, Serialize};
use tuna_nn::attention::{attention, merge_heads, repeat_kv, split_heads};
use tuna_nn::mask::causal_mask;
use tuna_nn::{linear, linear_no_bias, Activation, Linear, RmsNorm, Rotary};

/// The fields of a Llama/Qwen2 `config.json` that the model needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v (Qwen2 always; Llama when `attention_bias`).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

fn default_act() -> Activation {
    Activation::Silu
}
fn default_max_pos() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}

impl LlamaConfig {
    /// Key/value heads (grouped-query attention), defaulting to the query heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Size of one attention head.
    pub fn head_size(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }
}

/// Self-attention with rotary positions and grouped-query key/value heads.
struct SelfAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv: usize,
}

impl SelfAttention {
    fn load(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_size());
        let (nq, nkv) = (cfg.num_attention_heads, cfg.kv_heads());
        let proj = |out: usize, name: &str| {
            if cfg.attention_bias {
                linear(h, out, vb.pp(name))
            } else {
                linear_no_bias(h, out, vb.pp(name))
            }
        };
        Ok(Self {
            q_proj: proj(nq * d, "q_proj")?,
            k_proj: proj(nkv * d, "k_proj")?,
            v_proj: proj(nkv * d, "v_proj")?,
            o_proj: linear_no_bias(nq * d, h, vb.pp("o_proj"))?,
            n_heads: nq,
            n_kv: nkv,
        })
    }

    fn forward(&self, x: &Tensor, rotary: &Rotary, mask: &Tensor) -> Result<Tensor> {
        let q = split_heads(&self.q_proj.forward(x)?, self.n_heads)?; // (B, nH, T, D)
        let k = split_heads(&self.k_proj.forward(x)?, self.n_kv)?; // (B, nKV, T, D)
        let v = split_heads(&self.v_proj.forward(x)?, self.n_kv)?;
        let q = rotary.apply(&q, 0)?;
        let k = rotary.apply(&k, 0)?;
        let rep = self.n_heads / self.n_kv;
        let k = repeat_kv(&k, rep)?.contiguous()?;
        let v = repeat_kv(&v, rep)?.contiguous()?;
        let out = merge_heads(&attention(&q, &k, &v, Some(mask))?)?; // (B, T, nH*D)
        self.o_proj.forward(&out)
    }
}

/// SwiGLU feed-forward: `down(act(gate(x)) * up(x))`.
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn load(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: linear_no_bias(h, i, vb.pp("gate_proj"))?,
            up_proj: linear_no_bias(h, i, vb.pp("up_proj"))?,
            down_proj: linear_no_bias(i, h, vb.pp("down_proj"))?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.act.forward(&self.gate_proj.forward(x)?)?;
        self.down_proj.forward(&(g * self.up_proj.forward(x)?)?)
    }
}

/// One pre-norm decoder block.
struct Block {
    input_layernorm: RmsNorm,
    self_attn: SelfAttention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn load(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::load(h, eps, vb.pp("input_layernorm"))?,
            self_attn: SelfAttention::load(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::load(h, eps, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::load(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, x: &Tensor, rotary: &Rotary, mask: &Tensor) -> Result<Tensor> {
        let a = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, rotary, mask)?;
        let x = (x + a)?;
        let m = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        x + m
    }
}

/// A Llama-style causal language model.
pub struct Llama {
    embed_tokens: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
    cfg: LlamaConfig,
}

impl Llama {
    /// Loads from a var builder rooted at the checkpoint root (`model.*`, `lm_head.*`).
    pub fn load(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let m = vb.pp("model");
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed_w = m.pp("embed_tokens").get((v, h), "weight")?;
        let lm_head = if cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight") {
            Linear::new(embed_w.clone(), None)
        } else {
            linear_no_bias(h, v, vb.pp("lm_head"))?
        };
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(cfg, m.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: Embedding::new(embed_w, h),
            blocks,
            norm: RmsNorm::load(h, cfg.rms_norm_eps, m.pp("norm"))?,
            lm_head,
            rotary: Rotary::new(
                cfg.head_size(),
                cfg.max_position_embeddings,
                cfg.rope_theta,
                vb.device(),
            )?,
            cfg: cfg.clone(),
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Token embeddings: (B, T) ids -> (B, T, H). Soft prompts enter after this.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens.forward(ids)
    }

    /// Runs every block on `x` (B, T, H) and the final norm; returns (B, T, H).
    pub fn forward_embeds(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let t = x.dim(1)?;
        if t > self.rotary.max_positions() {
            candle_core::bail!(
                "sequence of {t} tokens is longer than the model's {} positions",
                self.rotary.max_positions()
            );
        }
        let mask = causal_mask(t, 0, ctx.mask.as_ref(), x.device())?;
        let mut h = x.clone();
        ctx.capture(&h);
        for block in &self.blocks {
            h = block.forward(&h, &self.rotary, &mask)?;
            ctx.capture(&h);
        }
        self.norm.forward(&h)
    }

    /// Ids to final hidden states (B, T, H).
    pub fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_embeds(&self.embed(ids)?, ctx)
    }

    /// Hidden states (B, T, H) to vocabulary logits (B, T, V) at every position.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }
}
