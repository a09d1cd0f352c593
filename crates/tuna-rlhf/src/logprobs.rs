//! Log-probabilities of response tokens under a causal LM with its method's pieces (LoRA, ...):
//! one forward pass over the padded batch, the LM head applied only where a response token is
//! predicted. Differentiable when the trainable tensors are installed tracked.

use crate::format::Seq;
use candle_core::{Result, Tensor};
use tuna_models::tokenizer::pad_batch;
use tuna_train::finetune::TaskModel;

/// Per-token results of [`response_logprobs`], rows one after the other.
pub struct TokenScores {
    /// (N,) log-probability of each response token.
    pub logp: Tensor,
    /// (N, H) final hidden state at the position that predicted each token (a value head's input).
    pub hidden: Tensor,
    /// (N,) entropy of each predicted distribution (no gradient), when asked for.
    pub entropy: Option<Tensor>,
    /// Response tokens of each row.
    pub counts: Vec<usize>,
}

impl TokenScores {
    /// (B,) sum of each row's values of `per_token` (N,).
    pub fn row_sums(&self, per_token: &Tensor) -> Result<Tensor> {
        let n: usize = self.counts.iter().sum();
        let mut m = vec![0f32; self.counts.len() * n];
        let mut at = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            for j in at..at + c {
                m[b * n + j] = 1.0;
            }
            at += c;
        }
        let m = Tensor::from_vec(m, (self.counts.len(), n), per_token.device())?;
        m.matmul(&per_token.unsqueeze(1)?)?.squeeze(1)
    }

    /// (B,) summed log-probability of each row's response.
    pub fn sequence_logp(&self) -> Result<Tensor> {
        self.row_sums(&self.logp)
    }
}

/// Scores the response tokens of `seqs`.
pub fn response_logprobs(tm: &TaskModel, seqs: &[&Seq], entropy: bool) -> Result<TokenScores> {
    let lm = tm
        .model
        .causal_lm()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let dev = tm.model.device.clone();
    let ids: Vec<&[u32]> = seqs.iter().map(|s| s.ids.as_slice()).collect();
    let batch = pad_batch(&ids, tm.model.tokenizer.pad_id, &dev)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let h = tm.hidden(&batch)?;
    let (b, t, hs) = h.dims3()?;
    let mut rows = vec![];
    let mut targets = vec![];
    let mut counts = Vec::with_capacity(b);
    for (i, s) in seqs.iter().enumerate() {
        let first = s.prompt_len.max(1);
        for p in first..s.ids.len() {
            rows.push((i * t + p - 1) as u32);
            targets.push(s.ids[p]);
        }
        counts.push(s.ids.len() - first);
    }
    if rows.is_empty() {
        candle_core::bail!("no response tokens to score");
    }
    let rows = Tensor::new(rows.as_slice(), &dev)?;
    let hidden = h.reshape((b * t, hs))?.index_select(&rows, 0)?;
    let (logp, entropy) = lm.token_logprobs(&hidden, &targets, entropy)?;
    Ok(TokenScores {
        logp,
        hidden,
        entropy,
        counts,
    })
}

/// Numerically stable `-log(sigmoid(x))` (= softplus(-x)), differentiable.
pub fn neg_log_sigmoid(x: &Tensor) -> Result<Tensor> {
    let soft = ((x.abs()?.neg()?.exp()? + 1.0)?).log()?;
    x.neg()?.relu()? + soft
}
