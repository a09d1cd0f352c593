//! A classifier made of a pretrained backbone, the pieces a method adds (see `tuna-adapt`) and a
//! new head; its forward pass, from token ids or from cached frozen states.

use super::head::{Head, HeadConfig};
use candle_core::{DType, Result, Tensor};
use tuna_adapt::{InputHook, Method};
use tuna_core::Rng;
use tuna_models::{Batch, Ctx, Family, Model};

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
    pub method: Method,
    pub head: Head,
    /// The method's part in front of the network (soft prompt, prefix), if any.
    pub input: Option<Box<dyn InputHook>>,
    pub num_labels: usize,
}

impl TaskModel {
    /// Builds the head, then the method's structure on `model`, with seeded initialisation.
    /// Which tensors train is decided by [`super::params::trainable_names`].
    pub fn build(
        mut model: Model,
        method: Method,
        head: &HeadConfig,
        num_labels: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let dev = model.device.clone();
        let h = model.info.hidden_size;
        let (name, bias) = match model.info.family {
            Family::Bert => ("classifier", true),
            Family::Llama => ("score", false),
        };
        let head = Head::init(
            name,
            head.pooling,
            h,
            head.hidden,
            num_labels,
            bias,
            head.dropout,
            &mut rng,
            &dev,
        )?;
        let input = method.attach(&mut model, &mut rng)?;
        Ok(Self {
            model,
            method,
            head,
            input,
            num_labels,
        })
    }

    /// Turns the method's input part into the form adapter files store (before saving one,
    /// and before loading one).
    pub fn to_saved_form(&mut self) -> Result<()> {
        match &mut self.input {
            Some(i) => i.to_saved_form(),
            None => Ok(()),
        }
    }

    /// Visits every tensor: backbone (with the method's parts), the input part, head.
    pub fn visit(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        self.model.network.visit(f)?;
        if let Some(i) = &mut self.input {
            i.visit(f)?;
        }
        self.head.visit(f)
    }

    /// Where training can start from cached frozen states.
    pub fn boundary(&self) -> Boundary {
        let net = &self.model.network;
        match self.method.frozen_blocks(net) {
            // A learned pooling needs every token's final state.
            Some(n) if n == net.num_blocks() && !self.head.pooling().is_learned() => {
                Boundary::Pooled
            }
            Some(n) => Boundary::Block(n),
            None => Boundary::Input,
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
        tuna_adapt::input::hidden_states(&self.model.network, self.input.as_deref(), batch)
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
