//! A classifier made of a pretrained backbone, the pieces a method adds (LoRA, adapters, prefix,
//! soft prompt) and a new head; its forward pass, from token ids or from cached frozen states.

use super::config::{MethodConfig, MethodKind};
use super::head::Head;
use super::prefix::{PrefixEncoder, PrefixShape};
use candle_core::{DType, Result, Tensor};
use tuna_core::Rng;
use tuna_models::{Batch, Ctx, Family, Model};
use tuna_nn::{Activation, LoraDelta};

/// Where a forward pass may start: a method whose first trainable weight is deep in the network
/// can reuse the frozen part's output, computed once per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Nothing is frozen at the input: run the whole network.
    Input,
    /// Blocks `0..n` are frozen: cache their output.
    Block(usize),
    /// The whole backbone is frozen: cache the pooled vector.
    Pooled,
}

/// Backbone + method + head.
pub struct TaskModel {
    pub model: Model,
    pub method: MethodConfig,
    pub head: Head,
    /// Soft prompt (P, H).
    pub prompt: Option<Tensor>,
    pub prefix: Option<PrefixEncoder>,
    pub num_labels: usize,
}

impl TaskModel {
    /// Builds the method's structure on `model` with seeded initialisation. Which tensors train
    /// is decided by [`super::method::trainable_names`].
    pub fn build(model: Model, method: MethodConfig, num_labels: usize, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let dev = model.device.clone();
        let h = model.info.hidden_size;
        let (name, bias) = match model.info.family {
            Family::Bert => ("classifier", true),
            Family::Llama => ("score", false),
        };
        let head = Head::init(
            name,
            method.pooling,
            h,
            method.head_hidden,
            num_labels,
            bias,
            method.head_dropout,
            &mut rng,
            &dev,
        )?;
        let mut tm = Self {
            model,
            method,
            head,
            prompt: None,
            prefix: None,
            num_labels,
        };
        match tm.method.kind {
            MethodKind::Head | MethodKind::Full => {}
            MethodKind::Lora => tm.attach_lora(&mut rng)?,
            MethodKind::Adapter => {
                let size = tm.method.adapter_size;
                tm.model
                    .network
                    .add_adapters(size, Activation::Relu, &mut rng)?
            }
            MethodKind::Prefix => {
                let shape = tm.prefix_shape();
                tm.prefix = Some(PrefixEncoder::init(
                    shape,
                    h,
                    tm.method.prefix_hidden,
                    &mut rng,
                    &dev,
                )?);
            }
            MethodKind::Prompt => tm.prompt = Some(tm.init_prompt(&mut rng)?),
        }
        Ok(tm)
    }

    /// Layout of prefix tuning's table for this backbone.
    pub fn prefix_shape(&self) -> PrefixShape {
        let (kv_heads, head_dim) = self.model.network.kv_shape();
        PrefixShape {
            tokens: self.method.virtual_tokens,
            layers: self.model.network.num_blocks(),
            kv_heads,
            head_dim,
        }
    }

    fn attach_lora(&mut self, rng: &mut Rng) -> Result<()> {
        let s = self.method.lora.clone();
        let regex = s
            .target_regex
            .as_deref()
            .map(|r| regex::Regex::new(&format!("^(?:{r})$")))
            .transpose()
            .map_err(candle_core::Error::wrap)?;
        let defaults: Vec<String> = self
            .model
            .info
            .family
            .default_lora_targets()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let targets = if s.targets.is_empty() {
            defaults
        } else {
            s.targets
        };
        let dev = self.model.device.clone();
        let mut hits = 0;
        self.model.network.linears(&mut |name, lin| {
            let hit = match &regex {
                Some(r) => r.is_match(name),
                None => targets
                    .iter()
                    .any(|t| name == t || name.ends_with(&format!(".{t}"))),
            };
            if hit {
                let (i, o) = lin.dims()?;
                lin.lora = Some(LoraDelta::init(i, o, s.r, s.alpha, s.dropout, rng, &dev)?);
                hits += 1;
            }
            Ok(())
        })?;
        if hits == 0 {
            candle_core::bail!(
                "no linear layer matches the LoRA targets {:?}{}",
                targets,
                s.target_regex
                    .map(|r| format!(" / regex {r}"))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }

    fn init_prompt(&self, rng: &mut Rng) -> Result<Tensor> {
        let p = self.method.virtual_tokens;
        let ids: Vec<u32> = match &self.method.prompt_init {
            Some(text) => {
                let toks = self
                    .model
                    .tokenizer
                    .encode_raw(text)
                    .map_err(candle_core::Error::wrap)?;
                if toks.is_empty() {
                    candle_core::bail!("the prompt initialisation text has no tokens");
                }
                (0..p).map(|i| toks[i % toks.len()]).collect()
            }
            // Ordinary vocabulary: skip the special tokens at the start of the vocabulary.
            None => {
                let v = self.model.info.vocab_size;
                let skip = (v / 10).min(1000);
                (0..p)
                    .map(|_| (skip + rng.below(v - skip)) as u32)
                    .collect()
            }
        };
        let ids = Tensor::new(ids.as_slice(), &self.model.device)?;
        self.model.network.embed(&ids.unsqueeze(0)?)?.squeeze(0)
    }

    /// Visits every tensor: backbone (with LoRA / adapters), prompt, prefix, head.
    pub fn visit(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        self.model.network.visit(f)?;
        if let Some(p) = &mut self.prompt {
            f("prompt_embeddings", p)?;
        }
        if let Some(p) = &mut self.prefix {
            p.visit(f)?;
        }
        self.head.visit(f)
    }

    /// Where training can start from cached frozen states.
    pub fn boundary(&self) -> Boundary {
        match (self.method.kind, self.method.unfreeze_last) {
            // A learned pooling needs every token's final state.
            (MethodKind::Head, 0) if self.head.pooling().is_learned() => {
                Boundary::Block(self.model.network.num_blocks())
            }
            (MethodKind::Head, 0) => Boundary::Pooled,
            (MethodKind::Head, n) => {
                Boundary::Block(self.model.network.num_blocks().saturating_sub(n))
            }
            _ => Boundary::Input,
        }
    }

    /// States at `boundary` for a padded batch: (B, T, H) block input, or pooled (B, H).
    /// Only frozen weights are involved, so this runs the fast inference kernels.
    pub fn frozen_states(&self, batch: &Batch, boundary: Boundary) -> Result<Tensor> {
        let net = &self.model.network;
        let mut ctx = Ctx::with_mask(&batch.mask);
        let x = net.prepare(&net.embed(&batch.ids)?, Some(&batch.type_ids), &ctx)?;
        match boundary {
            Boundary::Input => Ok(x),
            Boundary::Block(n) => net.run_blocks(&x, 0..n, &mut ctx),
            Boundary::Pooled => {
                let h = net.run_blocks(&x, 0..net.num_blocks(), &mut ctx)?;
                self.head.pool(&net.finish(&h)?, &batch.mask)
            }
        }
    }

    /// Logits (B, C) from states at `boundary` (as [`TaskModel::frozen_states`] gives them, or
    /// token ids for [`Boundary::Input`] via [`TaskModel::logits`]); `mask` (B, T) marks real tokens.
    pub fn logits_from(
        &self,
        states: &Tensor,
        mask: &Tensor,
        boundary: Boundary,
    ) -> Result<Tensor> {
        let net = &self.model.network;
        let pooled = match boundary {
            Boundary::Pooled => states.clone(),
            Boundary::Block(n) => {
                let mut ctx = Ctx::with_mask(mask);
                let h = net.run_blocks(states, n..net.num_blocks(), &mut ctx)?;
                self.head.pool(&net.finish(&h)?, mask)?
            }
            Boundary::Input => candle_core::bail!("use TaskModel::logits for full forward passes"),
        };
        self.head.forward(&pooled)
    }

    /// Logits (B, C) of a padded batch through the whole network.
    pub fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let h = self.hidden(batch)?;
        self.head.forward(&self.head.pool(&h, &batch.mask)?)
    }

    /// Final hidden states (B, T, H) of the real input positions (virtual tokens removed).
    pub fn hidden(&self, batch: &Batch) -> Result<Tensor> {
        let net = &self.model.network;
        let b = batch.ids.dim(0)?;
        let mut ctx = Ctx::with_mask(&batch.mask);
        let mut x = net.embed(&batch.ids)?;
        let mut type_ids = batch.type_ids.clone();
        let mut skip = 0;
        if let Some(p) = &self.prompt {
            let (n, h) = p.dims2()?;
            let prompt = p.unsqueeze(0)?.broadcast_as((b, n, h))?;
            x = Tensor::cat(&[&prompt, &x], 1)?;
            let ones = Tensor::ones((b, n), batch.mask.dtype(), x.device())?;
            ctx.mask = Some(Tensor::cat(&[&ones, &batch.mask], 1)?);
            let zeros = Tensor::zeros((b, n), type_ids.dtype(), x.device())?;
            type_ids = Tensor::cat(&[&zeros, &type_ids], 1)?;
            skip = n;
        }
        if let Some(p) = &self.prefix {
            let shape = self.prefix_shape();
            ctx.prefix = Some(p.key_values(shape, b)?);
            ctx.position_offset = shape.tokens;
        }
        let h = net.prepare(&x, Some(&type_ids), &ctx)?;
        let h = net.run_blocks(&h, 0..net.num_blocks(), &mut ctx)?;
        let h = net.finish(&h)?;
        let t = batch.ids.dim(1)?;
        if skip > 0 {
            h.narrow(1, skip, t)
        } else {
            Ok(h)
        }
    }

    /// Number of values in the tensors named `names`.
    pub fn count(&mut self, names: &[String]) -> Result<usize> {
        let mut n = 0;
        self.visit(&mut |name, t| {
            if names.iter().any(|x| x == name) {
                n += t.elem_count();
            }
            Ok(())
        })?;
        Ok(n)
    }
}

impl TaskModel {
    /// Class probabilities of `texts` (batched by length, returned in input order).
    pub fn predict_texts(
        &self,
        texts: &[String],
        max_len: usize,
        progress: &dyn crate::Progress,
    ) -> crate::Result<Vec<Vec<f32>>> {
        let ids = texts
            .iter()
            .map(|t| self.model.encode(t, max_len))
            .collect::<tuna_core::Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| (ids[i].len(), i));
        let mut out = vec![vec![]; ids.len()];
        progress.start("predicting", ids.len() as u64);
        for chunk in order.chunks(64) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let batch = tuna_models::tokenizer::pad_batch(
                &seqs,
                self.model.tokenizer.pad_id,
                &self.model.device,
            )?;
            let probs = probabilities(&self.logits(&batch)?)?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = probs[k].clone();
            }
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        Ok(out)
    }
}

/// Class probabilities (B, C) from logits.
pub fn probabilities(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?)?.to_vec2()
}
