//! Log-likelihood of continuations: how likely a causal LM finds `continuation` after
//! `context`, batched. The base of label scoring in in-context learning.

use candle_core::{DType, Device, IndexOp, Tensor, D};
use tuna_core::{Error, Result};
use tuna_models::llama::Llama;
use tuna_models::tokenizer::pad_batch;
use tuna_models::{Ctx, Model};

/// A context and the continuation to score after it, as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub context: Vec<u32>,
    pub continuation: Vec<u32>,
}

/// Log-probability of a continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLikelihood {
    /// Sum over the continuation's tokens of log p(token | everything before it).
    pub sum: f64,
    /// Number of continuation tokens.
    pub tokens: usize,
}

impl LogLikelihood {
    /// Mean log-probability per token (length-normalised).
    pub fn mean(&self) -> f64 {
        self.sum / self.tokens.max(1) as f64
    }
}

/// Scores candidates with a causal LM.
pub struct Scorer<'a> {
    lm: &'a Llama,
    pad: u32,
    device: Device,
    /// Candidates per forward pass.
    pub batch_size: usize,
}

impl<'a> Scorer<'a> {
    /// The scorer of a loaded causal LM; an error for encoders.
    pub fn new(model: &'a Model) -> Result<Self> {
        Ok(Self {
            lm: model.causal_lm()?,
            pad: model.tokenizer.pad_id,
            device: model.device.clone(),
            batch_size: 8,
        })
    }

    /// Log-likelihood of every candidate, in order. Sequences are batched by length; `batch_size`
    /// is the number of sequences per forward pass.
    pub fn score(&self, items: &[Candidate]) -> Result<Vec<LogLikelihood>> {
        let max_pos = self.lm.config().max_position_embeddings;
        for c in items {
            if c.context.is_empty() || c.continuation.is_empty() {
                return Err(Error::Invalid(
                    "cannot score: context and continuation must both have tokens".into(),
                ));
            }
            let n = c.context.len() + c.continuation.len();
            if n > max_pos {
                return Err(Error::Invalid(format!(
                    "a prompt of {n} tokens is longer than the model's {max_pos} positions: use fewer shots or shorter texts"
                )));
            }
        }
        let mut out = vec![
            LogLikelihood {
                sum: 0.0,
                tokens: 0
            };
            items.len()
        ];
        // One-token continuations need only their context's next-token distribution: each
        // distinct context runs once, whatever the number of labels.
        let mut contexts: Vec<&[u32]> = Vec::new();
        let mut users: Vec<Vec<usize>> = Vec::new();
        let mut longer = Vec::new();
        for (i, c) in items.iter().enumerate() {
            if c.continuation.len() > 1 {
                longer.push(i);
                continue;
            }
            match contexts.iter().position(|x| *x == c.context.as_slice()) {
                Some(k) => users[k].push(i),
                None => {
                    contexts.push(&c.context);
                    users.push(vec![i]);
                }
            }
        }
        let mut order: Vec<usize> = (0..contexts.len()).collect();
        order.sort_by_key(|&k| contexts[k].len());
        for chunk in order.chunks(self.batch_size.max(1)) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&k| contexts[k]).collect();
            let logp = self.next_token_logprobs(&seqs)?;
            for (row, &k) in chunk.iter().enumerate() {
                for &i in &users[k] {
                    let tok = items[i].continuation[0] as usize;
                    out[i] = LogLikelihood {
                        sum: logp[row][tok] as f64,
                        tokens: 1,
                    };
                }
            }
        }
        longer.sort_by_key(|&i| items[i].context.len() + items[i].continuation.len());
        for chunk in longer.chunks(self.batch_size.max(1)) {
            let batch: Vec<&Candidate> = chunk.iter().map(|&i| &items[i]).collect();
            for (&i, ll) in chunk.iter().zip(self.score_batch(&batch)?) {
                out[i] = ll;
            }
        }
        Ok(out)
    }

    /// Log-probabilities of the token after each sequence: (N, V) rows.
    fn next_token_logprobs(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let at: Vec<(usize, usize)> = seqs
            .iter()
            .enumerate()
            .map(|(b, s)| (b, s.len() - 1))
            .collect();
        Ok(self.logprobs_at(seqs, &at)?.to_vec2()?)
    }

    /// Runs the right-padded sequences and returns the log-softmax over the vocabulary at each
    /// (sequence, position) of `at`: (N, V). Only those rows go through the output layer.
    fn logprobs_at<S: AsRef<[u32]>>(&self, seqs: &[S], at: &[(usize, usize)]) -> Result<Tensor> {
        let batch = pad_batch(seqs, self.pad, &self.device)?;
        let t = batch.ids.dim(1)?;
        let mut ctx = Ctx::with_mask(&batch.mask);
        let h = self.lm.forward(&batch.ids, &mut ctx)?; // (B, T, H)
        let rows: Vec<u32> = at.iter().map(|&(b, p)| (b * t + p) as u32).collect();
        let picked = h
            .reshape((seqs.len() * t, h.dim(2)?))?
            .index_select(&Tensor::new(rows.as_slice(), &self.device)?, 0)?;
        let logits = self
            .lm
            .logits(&picked.unsqueeze(0)?)?
            .i(0)?
            .to_dtype(DType::F32)?;
        Ok(log_softmax(&logits)?)
    }

    fn score_batch(&self, items: &[&Candidate]) -> Result<Vec<LogLikelihood>> {
        // The last continuation token is only predicted, never fed.
        let seqs: Vec<Vec<u32>> = items
            .iter()
            .map(|c| {
                let mut s = c.context.clone();
                s.extend_from_slice(&c.continuation[..c.continuation.len() - 1]);
                s
            })
            .collect();
        // Positions that predict a continuation token.
        let mut at = Vec::new();
        let mut targets = Vec::new();
        for (b, c) in items.iter().enumerate() {
            for (j, &tok) in c.continuation.iter().enumerate() {
                at.push((b, c.context.len() - 1 + j));
                targets.push(tok);
            }
        }
        let logp = self.logprobs_at(&seqs, &at)?;
        let target = Tensor::new(targets.as_slice(), &self.device)?.unsqueeze(1)?;
        let chosen: Vec<f32> = logp.gather(&target, 1)?.squeeze(1)?.to_vec1()?;
        let mut out = Vec::with_capacity(items.len());
        let mut k = 0;
        for c in items {
            let n = c.continuation.len();
            let sum = chosen[k..k + n].iter().map(|&x| x as f64).sum();
            out.push(LogLikelihood { sum, tokens: n });
            k += n;
        }
        Ok(out)
    }
}

/// Row-wise log-softmax of (N, V) logits, in f32 with the max subtracted.
fn log_softmax(logits: &Tensor) -> candle_core::Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}
