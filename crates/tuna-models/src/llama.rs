//! Llama-style decoders: Llama, SmolLM2, Qwen2 (q/k/v biases), with grouped-query attention and
//! rotary positions. Returns hidden states for every position; [`Llama::logits`] maps them to the
//! vocabulary.
//!
//! Mirrors transformers' `models/llama/modeling_llama.py`; module paths follow its key tree
//! (`model.layers.N.self_attn.q_proj`, ...). GGUF files are renamed to these keys at load.

use crate::ctx::Ctx;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use tuna_nn::attention::{attention, merge_heads, split_heads};
use tuna_nn::mask::causal_mask;
use tuna_nn::swiglu_mlp::{self, StoredMlp};
use tuna_nn::{
    linear, linear_no_bias, Activation, Embedding, Hooks, KvCache, Linear, LinearVisitor, RmsNorm,
    Rotary, Sublayer, SublayerHook, Visitor, Weight,
};
use tuna_nn::{swiglu_down, token_logp, token_logp_stored};

/// Called with the key name (`model.embed_tokens.weight`, `lm_head.weight`) and the weight of
/// each (vocabulary, hidden) matrix: see [`Llama::vocab_weights`].
pub type VocabVisitor<'a> = dyn FnMut(&str, &mut Weight) -> Result<()> + 'a;

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

    /// `pos`: where the new tokens sit; `past`: what they attend to before themselves.
    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        mask: &Tensor,
        pos: &Positions,
        past: Past,
    ) -> Result<Tensor> {
        let q = split_heads(&self.q_proj.forward(x)?, self.n_heads)?; // (B, nH, T, D)
        let k = split_heads(&self.k_proj.forward(x)?, self.n_kv)?; // (B, nKV, T, D)
        let v = split_heads(&self.v_proj.forward(x)?, self.n_kv)?;
        let (q, k) = match pos {
            Positions::From(p) => (rotary.apply(&q, *p)?, rotary.apply(&k, *p)?),
            Positions::Ids(ids) => (rotary.apply_ids(&q, ids)?, rotary.apply_ids(&k, ids)?),
        };
        let (k, v) = match past {
            Past::None => (k, v),
            // Prefixes are not rotated: they stand for a cached past.
            Past::Prefix((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            Past::Cache(cache, layer) => cache.append(layer, &k, &v)?,
        };
        let out = merge_heads(&attention(&q, &k, &v, Some(mask))?)?; // (B, T, nH*D)
        self.o_proj.forward(&out)
    }
}

/// Positions of the new tokens.
enum Positions {
    /// `p, p + 1, ...` for every row.
    From(usize),
    /// Per-row ids (B, T) (left-padded batches).
    Ids(Tensor),
}

/// What the new tokens attend to before themselves.
enum Past<'a> {
    None,
    /// Prefix tuning's key/value prefix of this block.
    Prefix(&'a (Tensor, Tensor)),
    /// The decoding cache, and this block's index in it.
    Cache(&'a mut KvCache, usize),
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

    /// The sublayer as one op on its frozen stored weights, when all three are plain.
    fn stored(&self) -> Option<StoredMlp> {
        let (g, u, d) = (
            self.gate_proj.plain_stored()?,
            self.up_proj.plain_stored()?,
            self.down_proj.plain_stored()?,
        );
        matches!(self.act, Activation::Silu).then(|| StoredMlp {
            gate: g.clone(),
            up: u.clone(),
            down: d.clone(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Training through frozen stored weights: one op that keeps only `x` and forms the
        // intermediate activations again in the backward (unless turned off).
        let checkpoint = |m: &StoredMlp| x.track_op() && m.supported(x) && swiglu_mlp::recompute();
        if let Some(mlp) = self.stored().filter(checkpoint) {
            return mlp.forward(x);
        }
        let (gate, up) = (self.gate_proj.forward(x)?, self.up_proj.forward(x)?);
        // Training past a frozen stored `down`: one op, so the gated product is not kept.
        let tracked = gate.track_op() || up.track_op();
        if let (Activation::Silu, Some(w), true) =
            (self.act, self.down_proj.plain_stored(), tracked)
        {
            if swiglu_down::supported(&gate, &up, w) {
                return swiglu_down::swiglu_down(&gate, &up, w);
            }
        }
        let h = match self.act {
            Activation::Silu => tuna_nn::ops::silu_mul(&gate, &up)?,
            act => (act.forward(&gate)? * up)?,
        };
        self.down_proj.forward(&h)
    }
}

/// One pre-norm decoder block.
struct Block {
    input_layernorm: RmsNorm,
    self_attn: SelfAttention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
    /// Methods' transformations of the sublayer outputs.
    hooks: Hooks,
}

impl Block {
    fn load(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::load(h, eps, vb.pp("input_layernorm"))?,
            self_attn: SelfAttention::load(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::load(h, eps, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::load(cfg, vb.pp("mlp"))?,
            hooks: Hooks::default(),
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        mask: &Tensor,
        pos: &Positions,
        past: Past,
    ) -> Result<Tensor> {
        let a =
            self.self_attn
                .forward(&self.input_layernorm.forward(x)?, rotary, mask, pos, past)?;
        let x = (x + self.hooks.apply(Sublayer::Attention, a)?)?;
        let m = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        x + self.hooks.apply(Sublayer::FeedForward, m)?
    }

    fn linears(&mut self, prefix: &str, f: &mut LinearVisitor) -> Result<()> {
        let a = &mut self.self_attn;
        f(&format!("{prefix}.self_attn.q_proj"), &mut a.q_proj)?;
        f(&format!("{prefix}.self_attn.k_proj"), &mut a.k_proj)?;
        f(&format!("{prefix}.self_attn.v_proj"), &mut a.v_proj)?;
        f(&format!("{prefix}.self_attn.o_proj"), &mut a.o_proj)?;
        let m = &mut self.mlp;
        f(&format!("{prefix}.mlp.gate_proj"), &mut m.gate_proj)?;
        f(&format!("{prefix}.mlp.up_proj"), &mut m.up_proj)?;
        f(&format!("{prefix}.mlp.down_proj"), &mut m.down_proj)
    }

    fn visit(&mut self, prefix: &str, f: &mut Visitor) -> Result<()> {
        self.input_layernorm
            .visit(&format!("{prefix}.input_layernorm"), f)?;
        self.post_attention_layernorm
            .visit(&format!("{prefix}.post_attention_layernorm"), f)?;
        self.linears(prefix, &mut |name, l| l.visit(name, f))?;
        self.hooks.visit(prefix, f)
    }
}

/// A Llama-style causal language model.
pub struct Llama {
    embed_tokens: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    /// The output layer is the token embedding matrix.
    tied: bool,
    rotary: Rotary,
    device: Device,
    cfg: LlamaConfig,
}

impl Llama {
    /// Loads from a var builder rooted at the checkpoint root (`model.*`, `lm_head.*`).
    pub fn load(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let m = vb.pp("model");
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed_w = m.pp("embed_tokens").get((v, h), "weight")?;
        let tied = cfg.tie_word_embeddings || !vb.contains_tensor("lm_head.weight");
        let lm_head = if tied {
            Linear::new(embed_w.clone(), None)
        } else {
            linear_no_bias(h, v, vb.pp("lm_head"))?
        };
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(cfg, m.pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: Embedding::new(embed_w)?,
            blocks,
            norm: RmsNorm::load(h, cfg.rms_norm_eps, m.pp("norm"))?,
            lm_head,
            tied,
            rotary: Rotary::new(
                cfg.head_size(),
                cfg.max_position_embeddings,
                cfg.rope_theta,
                vb.device(),
            )?,
            device: vb.device().clone(),
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

    /// Key prefix of block `i` (`model.layers.3`).
    pub fn block_name(&self, i: usize) -> String {
        format!("model.layers.{i}")
    }

    /// Runs `blocks` on `h` (B, T, H) (token embeddings, or an earlier block's output).
    /// Positions start at `ctx.position_offset` plus the cached length, or are `ctx.positions`;
    /// with `ctx.cache` the new keys and values are appended to it. Returns the last block's
    /// output, before the final norm.
    pub fn run_blocks(&self, h: &Tensor, blocks: Range<usize>, ctx: &mut Ctx) -> Result<Tensor> {
        let t = h.dim(1)?;
        let past = ctx.past_len()?;
        let start = ctx.position_offset + ctx.cached_len()?;
        if start + t > self.rotary.max_positions() {
            candle_core::bail!(
                "sequence of {} positions is longer than the model's {} positions",
                start + t,
                self.rotary.max_positions()
            );
        }
        let pos = match &ctx.positions {
            Some(ids) => Positions::Ids(ids.clone()),
            None => Positions::From(start),
        };
        let mask = causal_mask(t, past, ctx.key_mask()?.as_ref(), h.device())?;
        let mut h = h.clone();
        if blocks.start == 0 {
            ctx.capture(&h);
        }
        for i in blocks {
            let block = &self.blocks[i];
            let past = match (&mut ctx.cache, &ctx.prefix) {
                (Some(cache), _) => Past::Cache(cache, i),
                (None, Some(p)) => Past::Prefix(&p[i]),
                (None, None) => Past::None,
            };
            h = block.forward(&h, &self.rotary, &mask, &pos, past)?;
            ctx.capture(&h);
        }
        Ok(h)
    }

    /// Number of decoder blocks (the layers of a [`KvCache`]).
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The final norm, applied to the last block's output.
    pub fn final_norm(&self, h: &Tensor) -> Result<Tensor> {
        self.norm.forward(h)
    }

    /// Runs every block on `x` (B, T, H) and the final norm; returns (B, T, H).
    pub fn forward_embeds(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let h = self.run_blocks(x, 0..self.blocks.len(), ctx)?;
        self.final_norm(&h)
    }

    /// Visits every tensor (weights and the methods' parts) by its Hugging Face / PEFT key name. A tied
    /// output layer is the embedding and is not visited twice. A weight kept in its stored type
    /// is not a tensor and is not visited (see [`Llama::vocab_weights`]).
    pub fn visit(&mut self, f: &mut Visitor) -> Result<()> {
        if let Weight::Dense(t) = self.embed_tokens.weight() {
            let mut t = t.clone();
            f("model.embed_tokens.weight", &mut t)?;
            self.embed_tokens.set_weight(Weight::Dense(t))?;
        }
        if self.tied {
            self.tie_head();
        } else {
            self.lm_head.visit("lm_head", f)?;
        }
        for i in 0..self.blocks.len() {
            let prefix = self.block_name(i);
            self.blocks[i].visit(&prefix, f)?;
        }
        self.norm.visit("model.norm", f)
    }

    /// Visits the (vocabulary, hidden) weights, tensors or kept in their stored type, by key
    /// name: the token embedding and a separate output layer (a tied one is the embedding), so
    /// the loader can place stored ones and whoever needs their values can decode them.
    pub fn vocab_weights(&mut self, f: &mut VocabVisitor) -> Result<()> {
        let mut w = self.embed_tokens.weight().clone();
        f("model.embed_tokens.weight", &mut w)?;
        self.embed_tokens.set_weight(w)?;
        if self.tied {
            self.tie_head();
            return Ok(());
        }
        let mut w = self.lm_head.weight().clone();
        f("lm_head.weight", &mut w)?;
        self.lm_head.set_weight(w)
    }

    /// The output layer of a tied model: the embedding table, whichever kind it is.
    fn tie_head(&mut self) {
        self.lm_head = Linear::from_weight(self.embed_tokens.weight().clone(), None);
    }

    /// Visits every linear layer of the blocks by module name (weight-delta targets).
    pub fn linears(&mut self, f: &mut LinearVisitor) -> Result<()> {
        for i in 0..self.blocks.len() {
            let prefix = self.block_name(i);
            self.blocks[i].linears(&prefix, f)?;
        }
        Ok(())
    }

    /// Puts `hook` on sublayer `at` of block `block`.
    pub fn set_hook(&mut self, block: usize, at: Sublayer, hook: Box<dyn SublayerHook>) {
        self.blocks[block].hooks.set(at, hook);
    }

    /// The device of the weights.
    pub fn device(&self) -> &candle_core::Device {
        &self.device
    }

    /// True when the output layer shares the token embedding matrix.
    pub fn tied(&self) -> bool {
        self.tied
    }

    /// Ids to final hidden states (B, T, H).
    pub fn forward(&self, ids: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.forward_embeds(&self.embed(ids)?, ctx)
    }

    /// Hidden states (B, T, H) to vocabulary logits (B, T, V) at every position.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    /// The log-probability (N,) of each of `targets` as the next token after the hidden states
    /// `hidden` (N, H), and with `entropy` each predicted distribution's entropy (N,, no
    /// gradient). On the CPU with a plain output layer the logits are formed a few rows at a
    /// time and never kept ([`token_logp`], or [`token_logp_stored`] for one kept in its
    /// stored type); otherwise from the full (N, V) logits.
    pub fn token_logprobs(
        &self,
        hidden: &Tensor,
        targets: &[u32],
        entropy: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let hidden = hidden.to_dtype(candle_core::DType::F32)?;
        if let Some(w) = self.lm_head.plain_weight() {
            if token_logp::supported(&hidden, w) {
                return token_logp::token_logprobs(&hidden, w, targets, entropy);
            }
        }
        if let Some(q) = self.lm_head.plain_stored() {
            if token_logp_stored::supported(&hidden, q) {
                return token_logp_stored::token_logprobs(&hidden, q, targets, entropy);
            }
        }
        if tuna_nn::fallback::off_kernel(&hidden) {
            tuna_nn::fallback::note("tuna-token-logp", &hidden, "the full logits");
        }
        let logits = self.logits(&hidden)?.to_dtype(candle_core::DType::F32)?;
        let all = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
        let idx = Tensor::new(targets, hidden.device())?.unsqueeze(1)?;
        let logp = all.gather(&idx, 1)?.squeeze(1)?;
        let ent = match entropy {
            true => {
                let a = all.detach();
                Some((a.exp()? * &a)?.sum(candle_core::D::Minus1)?.neg()?)
            }
            false => None,
        };
        Ok((logp, ent))
    }
}
