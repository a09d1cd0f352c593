//! Continuous batching: a decode batch that sequences join and leave between steps. A joining
//! prompt is prefilled alone and its key/value cache merged into the running batch (the shorter
//! side left-padded along positions, masked out); each [`DecodeBatch::step`] runs one token of
//! every row in one forward pass; a finished or removed row leaves by `index_select`, and the
//! leading positions that only padding is left in are dropped. Each row keeps its own settings
//! and sampling stream (stream 0, as when it runs alone), so greedy rows give the tokens that
//! [`Generator::generate`] gives them. Rows may come from different adapters of one base model
//! (each row counts its own virtual tokens): a step then runs on a generator whose layers route
//! each row to its adapter (`tuna serve`).

use crate::generate::{GenerateConfig, Generation, Generator, StopReason};
use crate::sampling::Sampler;
use crate::stream::TextStream;
use candle_core::{DType, Tensor};
use std::time::Instant;
use tuna_core::Result;
use tuna_models::Ctx;

/// Decoding state of one sequence of the batch.
struct BatchRow<K> {
    key: K,
    cfg: GenerateConfig,
    sampler: Sampler,
    stream: TextStream,
    /// Generated tokens, the last one not yet run through the model.
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Virtual tokens before the prompt in the row's cache (its adapter's prefix or prompt).
    virt: usize,
    max_pos: usize,
    stop: Option<StopReason>,
    prefill_seconds: f64,
    decode_start: Instant,
}

/// What one row did in a step (or when it joined).
#[derive(Debug)]
pub struct RowEvent<K> {
    pub key: K,
    /// New text that is safe to show (possibly empty).
    pub text: String,
    /// Set when the row ended (it has left the batch).
    pub done: Option<Generation>,
}

/// Sequences of one causal LM decoded together, each identified by a key `K`.
pub struct DecodeBatch<K> {
    rows: Vec<BatchRow<K>>,
    /// The cache of every row (B, kv heads, T, head dim) per layer.
    ctx: Ctx,
    /// (B, T) u32 of 0/1: which cached positions are real tokens.
    mask: Option<Tensor>,
}

impl<K> Default for DecodeBatch<K> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            ctx: Ctx::default(),
            mask: None,
        }
    }
}

impl<K: Copy + PartialEq> DecodeBatch<K> {
    /// Rows decoding.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is decoding.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The keys of the rows decoding.
    pub fn keys(&self) -> Vec<K> {
        self.rows.iter().map(|r| r.key).collect()
    }

    /// Prefills `prompt` alone and picks its first token; the row joins the batch unless that
    /// already ended it (then the event carries its generation).
    pub fn join(
        &mut self,
        gen: &Generator,
        key: K,
        prompt: &[u32],
        cfg: &GenerateConfig,
    ) -> Result<RowEvent<K>> {
        let start = Instant::now();
        let max_pos = gen.check_prompts(&[prompt.to_vec()], cfg)?;
        let mut ctx = Ctx::with_cache(gen.lm.num_layers());
        // The generator's virtual tokens (prefix or prompt tuning) go in the row's cache too.
        let (logits, mask) = gen.prefill(&[prompt.to_vec()], 0, &mut ctx)?;
        let mut row = BatchRow {
            key,
            cfg: cfg.clone(),
            sampler: Sampler::new(&cfg.sampling, 0),
            stream: TextStream::new(&cfg.stop_strings),
            tokens: Vec::new(),
            prompt_len: prompt.len(),
            virt: gen.virtual_len()?,
            max_pos,
            stop: None,
            prefill_seconds: 0.0,
            decode_start: start,
        };
        let text = match cfg.max_new_tokens {
            0 => String::new(),
            _ => sample(gen, &mut row, &logits[0])?,
        };
        row.prefill_seconds = start.elapsed().as_secs_f64();
        row.decode_start = Instant::now();
        if row.stop.is_some() {
            let (key, rest, generation) = finish(gen, row)?;
            return Ok(RowEvent {
                key,
                text: text + &rest,
                done: Some(generation),
            });
        }
        self.merge(ctx, mask)?;
        self.rows.push(row);
        Ok(RowEvent {
            key,
            text,
            done: None,
        })
    }

    /// Adds the cache of a prefilled row (and its mask) after the batch's rows, left-padding
    /// whichever side is shorter.
    fn merge(&mut self, ctx: Ctx, mask: Tensor) -> Result<()> {
        let (Some(mut cache), Some(mut have)) = (self.ctx.cache.take(), self.mask.take()) else {
            self.ctx = ctx;
            self.mask = Some(mask);
            return Ok(());
        };
        let Some(mut joining) = ctx.cache else {
            return Err(tuna_core::Error::Invalid(
                "a row joined the batch without a cache".into(),
            ));
        };
        let (t_have, t_new) = (have.dim(1)?, mask.dim(1)?);
        let mut mask = mask;
        if t_have < t_new {
            cache.pad_front(t_new - t_have)?;
            have = pad_mask(&have, t_new - t_have)?;
        } else {
            joining.pad_front(t_have - t_new)?;
            mask = pad_mask(&mask, t_have - t_new)?;
        }
        cache.cat_rows(&joining)?;
        self.ctx.cache = Some(cache);
        self.mask = Some(Tensor::cat(&[&have, &mask], 0)?);
        Ok(())
    }

    /// Runs the last token of every row in one forward pass and picks each row's next one; the
    /// rows that end leave the batch. `gen` is the rows' model, or one that adapts each row as
    /// its own model does (same tokenizer and cache layout); its virtual tokens are not used.
    pub fn step(&mut self, gen: &Generator) -> Result<Vec<RowEvent<K>>> {
        let b = self.rows.len();
        let Some(mask) = self.mask.take() else {
            return Ok(Vec::new());
        };
        let last: Vec<u32> = self
            .rows
            .iter()
            .map(|r| r.tokens[r.tokens.len() - 1])
            .collect();
        let ids = Tensor::from_vec(last, (b, 1), &gen.device)?;
        let mask = Tensor::cat(&[&mask, &Tensor::ones((b, 1), DType::U32, &gen.device)?], 1)?;
        // One row has no padding left (see `leave`): it runs as it would alone.
        (self.ctx.positions, self.ctx.mask) = if b > 1 {
            let pos: Vec<u32> = self
                .rows
                .iter()
                .map(|r| (r.virt + r.prompt_len + r.tokens.len() - 1) as u32)
                .collect();
            let pos = Tensor::from_vec(pos, (b, 1), &gen.device)?;
            (Some(pos), Some(mask.clone()))
        } else {
            (None, None)
        };
        self.mask = Some(mask);
        let logits = gen.last_logits(&gen.lm.embed(&ids)?, &mut self.ctx)?;
        let mut events = Vec::with_capacity(b);
        for (row, logits) in self.rows.iter_mut().zip(&logits) {
            let text = sample(gen, row, logits)?;
            events.push(RowEvent {
                key: row.key,
                text,
                done: None,
            });
        }
        let ended: Vec<K> = self
            .rows
            .iter()
            .filter(|r| r.stop.is_some())
            .map(|r| r.key)
            .collect();
        for (event, row) in self.leave(|k| ended.contains(&k))? {
            let Some(e) = events.iter_mut().find(|e| e.key == event) else {
                continue;
            };
            let (_, rest, generation) = finish(gen, row)?;
            e.text.push_str(&rest);
            e.done = Some(generation);
        }
        Ok(events)
    }

    /// Removes the rows whose key `gone` picks (a client gone, a time limit passed) without
    /// finishing them.
    pub fn remove(&mut self, gone: impl Fn(K) -> bool) -> Result<usize> {
        Ok(self.leave(gone)?.len())
    }

    /// Takes the rows that `out` picks out of the batch: their cache rows go, and so do the
    /// leading positions that are padding in every row left.
    fn leave(&mut self, out: impl Fn(K) -> bool) -> Result<Vec<(K, BatchRow<K>)>> {
        if !self.rows.iter().any(|r| out(r.key)) {
            return Ok(Vec::new());
        }
        let (mut left, mut kept, mut keep) = (Vec::new(), Vec::new(), Vec::new());
        for (i, row) in std::mem::take(&mut self.rows).into_iter().enumerate() {
            if out(row.key) {
                left.push((row.key, row));
            } else {
                keep.push(i as u32);
                kept.push(row);
            }
        }
        self.rows = kept;
        if self.rows.is_empty() {
            self.ctx = Ctx::default();
            self.mask = None;
            return Ok(left);
        }
        let (Some(cache), Some(mask)) = (self.ctx.cache.as_mut(), self.mask.as_ref()) else {
            return Ok(left);
        };
        let index = Tensor::from_vec(keep, self.rows.len(), mask.device())?;
        cache.select_rows(&index)?;
        let mask = mask.index_select(&index, 0)?;
        let real: Vec<u32> = mask.max(0)?.to_vec1()?;
        let pad = real.iter().take_while(|&&m| m == 0).count();
        cache.drop_front(pad)?;
        self.mask = Some(mask.narrow(1, pad, real.len() - pad)?);
        Ok(left)
    }
}

/// Picks `row`'s next token from its `logits`, marks the row when it ends; the new text.
fn sample<K>(gen: &Generator, row: &mut BatchRow<K>, logits: &[f32]) -> Result<String> {
    let id = row.sampler.sample(logits);
    if row.cfg.stop_tokens.contains(&id) {
        row.stop = Some(StopReason::StopToken);
        return Ok(String::new());
    }
    row.tokens.push(id);
    let piece = row.stream.push(gen.tok, id)?;
    if row.stream.stopped() {
        row.stop = Some(StopReason::StopString);
    } else if row.prompt_len + row.tokens.len() >= row.max_pos {
        row.stop = Some(StopReason::ContextFull);
    } else if row.tokens.len() >= row.cfg.max_new_tokens {
        row.stop = Some(StopReason::MaxTokens);
    }
    Ok(piece)
}

/// An ended row's key, the text its stream still held back, and its generation.
fn finish<K>(gen: &Generator, mut row: BatchRow<K>) -> Result<(K, String, Generation)> {
    let rest = row.stream.flush(gen.tok)?;
    let generation = Generation {
        text: row.stream.text(gen.tok)?,
        tokens: row.tokens,
        stop: row.stop.unwrap_or(StopReason::MaxTokens),
        prompt_tokens: row.prompt_len,
        cached_tokens: 0,
        prefill_seconds: row.prefill_seconds,
        decode_seconds: row.decode_start.elapsed().as_secs_f64(),
    };
    Ok((row.key, rest, generation))
}

/// `mask` (B, T) with `n` zero columns before it.
fn pad_mask(mask: &Tensor, n: usize) -> Result<Tensor> {
    let zeros = Tensor::zeros((mask.dim(0)?, n), mask.dtype(), mask.device())?;
    Ok(Tensor::cat(&[&zeros, mask], 1)?)
}
