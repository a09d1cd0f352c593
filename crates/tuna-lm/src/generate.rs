//! Text generation with a key/value cache: one prompt streamed token by token, or a batch of
//! prompts decoded together (left-padded, per-row positions), each row with its own seeded
//! sampling stream so a prompt gives the same text alone or in a batch.

use crate::sampling::{Sampler, Sampling};
use crate::stream::TextStream;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use std::time::Instant;
use tuna_core::{Error, Result};
use tuna_models::llama::Llama;
use tuna_models::{Ctx, Model, TextTokenizer, VirtualTokens};

/// What to generate and when to stop.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Generation ends once the text contains one of these; the text is cut before it.
    pub stop_strings: Vec<String>,
    /// Generation ends at one of these tokens (not part of the text).
    pub stop_tokens: Vec<u32>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    StopToken,
    StopString,
    MaxTokens,
    /// The model's positions ran out.
    ContextFull,
}

/// One generated continuation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    /// Generated token ids, the stop token excluded.
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from a [`Session`]'s cache (not run again).
    pub cached_tokens: usize,
    /// Time to run the prompt and pick the first token.
    pub prefill_seconds: f64,
    /// Time for the remaining tokens.
    pub decode_seconds: f64,
}

/// The key/value cache of a conversation, kept between calls of [`Generator::generate_in`]: a
/// prompt that starts with the tokens already run (the earlier turns) only runs the rest.
#[derive(Default)]
pub struct Session {
    /// Tokens whose keys and values are in `ctx`'s cache, in order.
    ids: Vec<u32>,
    ctx: Option<Ctx>,
}

impl Session {
    /// Forgets the cached conversation.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A causal LM ready to generate.
pub struct Generator<'a> {
    pub(crate) lm: &'a Llama,
    pub(crate) tok: &'a TextTokenizer,
    pub(crate) device: Device,
    /// An input method's virtual tokens, run before every prompt.
    virt: Option<VirtualTokens>,
}

/// Decoding state of one row.
struct Row {
    sampler: Sampler,
    stream: TextStream,
    tokens: Vec<u32>,
    stop: Option<StopReason>,
    prompt_len: usize,
}

impl<'a> Generator<'a> {
    /// The generator of a loaded causal LM; an error for encoders.
    pub fn new(model: &'a Model) -> Result<Self> {
        Ok(Self {
            lm: model.causal_lm()?,
            tok: &model.tokenizer,
            device: model.device.clone(),
            virt: None,
        })
    }

    /// The same generator with `virt` (a soft prompt's or a prefix's virtual tokens) before
    /// every prompt, as the method ran them in training: the soft prompt at positions 0..P, a
    /// prefix as P cached positions. The prompts' own tokens start at position P.
    pub fn with_virtual_tokens(mut self, virt: Option<VirtualTokens>) -> Self {
        self.virt = virt.filter(|v| !v.is_empty());
        self
    }

    /// Number of virtual positions before every prompt.
    pub(crate) fn virtual_len(&self) -> Result<usize> {
        Ok(match &self.virt {
            Some(v) => v.len()?,
            None => 0,
        })
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        self.tok
    }

    /// Generates from one prompt, handing each piece of text to `on_text` as soon as it is safe
    /// to show.
    pub fn generate(
        &self,
        prompt: &[u32],
        cfg: &GenerateConfig,
        on_text: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<Generation> {
        self.one(prompt, cfg, on_text, None)
    }

    /// As [`Generator::generate`], reusing `session`'s cache for the longest start that
    /// `prompt` shares with the tokens run before, and leaving the new state there.
    pub fn generate_in(
        &self,
        session: &mut Session,
        prompt: &[u32],
        cfg: &GenerateConfig,
        on_text: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<Generation> {
        self.one(prompt, cfg, on_text, Some(session))
    }

    fn one(
        &self,
        prompt: &[u32],
        cfg: &GenerateConfig,
        on_text: &mut dyn FnMut(&str) -> Result<()>,
        session: Option<&mut Session>,
    ) -> Result<Generation> {
        let mut out = self.run(&[prompt.to_vec()], cfg, &mut |_, p| on_text(p), session)?;
        Ok(out.remove(0))
    }

    /// Generates from every prompt in one batch.
    pub fn generate_batch(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
    ) -> Result<Vec<Generation>> {
        self.run(prompts, cfg, &mut |_, _| Ok(()), None)
    }

    fn run(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        on_text: &mut dyn FnMut(usize, &str) -> Result<()>,
        mut session: Option<&mut Session>,
    ) -> Result<Vec<Generation>> {
        let max_pos = self.check_prompts(prompts, cfg)?;
        let mut rows: Vec<Row> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| Row {
                sampler: Sampler::new(&cfg.sampling, i as u64),
                stream: TextStream::new(&cfg.stop_strings),
                tokens: Vec::new(),
                stop: None,
                prompt_len: p.len(),
            })
            .collect();

        let start = Instant::now();
        let (mut ctx, cached) = self.resume(prompts, session.as_deref_mut())?;
        let (mut logits, mut mask) = self.prefill(prompts, cached, &mut ctx)?;
        let prefill_seconds = start.elapsed().as_secs_f64();
        let decode_start = Instant::now();
        // Tokens run through the model after the prompt (one row when in a session).
        let mut fed = Vec::new();

        for step in 0..cfg.max_new_tokens {
            let next = self.sample_next(&mut rows, &logits, cfg, max_pos, on_text)?;
            if rows.iter().all(|r| r.stop.is_some()) || step + 1 == cfg.max_new_tokens {
                break;
            }
            fed.push(next[0]);
            logits = self.feed(next, &rows, step, &mut mask, &mut ctx)?;
        }
        let decode_seconds = decode_start.elapsed().as_secs_f64();
        if let Some(s) = session {
            s.ids = prompts[0].iter().copied().chain(fed).collect();
            s.ctx = Some(ctx);
        }
        generations(
            self.tok,
            rows,
            cached,
            (prefill_seconds, decode_seconds),
            on_text,
        )
    }

    /// Checks the sampling settings and that every prompt is non-empty and fits the model;
    /// the number of positions left for a prompt and its continuation after the virtual ones.
    pub(crate) fn check_prompts(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
    ) -> Result<usize> {
        cfg.sampling.validate().map_err(Error::Invalid)?;
        if prompts.iter().any(|p| p.is_empty()) {
            return Err(Error::Invalid(
                "cannot generate from an empty prompt".into(),
            ));
        }
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let max_pos = self.lm.config().max_position_embeddings;
        let virt = self.virtual_len()?;
        if longest + virt >= max_pos {
            let after = match virt {
                0 => String::new(),
                n => format!(" after the adapter's {n} virtual tokens"),
            };
            return Err(Error::Invalid(format!(
                "the prompt has {longest} tokens; the model takes at most {}{after}",
                max_pos - virt
            )));
        }
        Ok(max_pos - virt)
    }

    /// The context to prefill in and how many prompt tokens its cache already holds: a session
    /// (one prompt) keeps the cache of the start it shares with what ran before.
    fn resume(&self, prompts: &[Vec<u32>], session: Option<&mut Session>) -> Result<(Ctx, usize)> {
        let mut ctx = Ctx::with_cache(self.lm.num_layers());
        let mut cached = 0;
        if let Some(s) = session {
            if let (Some(old), [prompt]) = (s.ctx.take(), prompts) {
                let shared = s.ids.iter().zip(prompt).take_while(|(a, b)| a == b).count();
                // At least one token runs, for the next token's logits.
                cached = shared.min(prompt.len() - 1);
                ctx = old;
                if let Some(c) = ctx.cache.as_mut() {
                    // The virtual positions stay in the cache ahead of the prompt's.
                    c.truncate(self.virtual_len()? + cached)?;
                }
            }
        }
        Ok((ctx, cached))
    }

    /// Prefill: runs the prompts after their first `cached` tokens, left-padded, with positions
    /// that count real tokens only, behind the virtual tokens unless a session's cache already
    /// holds them; each row's next-token logits and the mask (B, P + T) so far.
    pub(crate) fn prefill(
        &self,
        prompts: &[Vec<u32>],
        cached: usize,
        ctx: &mut Ctx,
    ) -> Result<(Vec<Vec<f32>>, Tensor)> {
        let b = prompts.len();
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let fresh: Vec<Vec<u32>> = prompts.iter().map(|p| p[cached..].to_vec()).collect();
        let (ids, mut mask) = left_pad(&fresh, self.tok.pad_id, &self.device)?;
        let virt = match cached {
            0 => self.virt.as_ref(),
            _ => None,
        };
        let p = self.virtual_len()?;
        if p > 0 && cached == 0 {
            let ones = Tensor::ones((b, p), mask.dtype(), &self.device)?;
            mask = Tensor::cat(&[&ones, &mask], 1)?;
        }
        if b > 1 {
            // A soft prompt is part of the input (positions 0..P); a prefix is cached already.
            let lead = match virt {
                Some(VirtualTokens::Embeds(_)) => p,
                _ => 0,
            };
            let positions: Vec<u32> = prompts
                .iter()
                .flat_map(|t| {
                    let pad = longest - t.len();
                    let lead = (0..lead).map(|j| j as u32);
                    lead.chain((0..longest).map(move |j| (p + j.saturating_sub(pad)) as u32))
                })
                .collect();
            let t = positions.len() / b;
            ctx.positions = Some(Tensor::from_vec(positions, (b, t), &self.device)?);
            ctx.mask = Some(mask.clone());
        }
        let mut h = self.lm.embed(&ids)?;
        match virt {
            Some(VirtualTokens::Embeds(e)) => {
                let e = e.unsqueeze(0)?.broadcast_as((b, p, e.dim(1)?))?;
                h = Tensor::cat(&[&e.to_dtype(h.dtype())?, &h], 1)?;
            }
            Some(VirtualTokens::Past(layers)) => seed_cache(ctx, layers, b)?,
            None => {}
        }
        let logits = self.last_logits(&h, ctx)?;
        Ok((logits, mask))
    }

    /// Samples the next token of each unfinished row from its logits, streams the new text and
    /// marks the rows that stop; the ids to run next (the pad id for finished rows).
    fn sample_next(
        &self,
        rows: &mut [Row],
        logits: &[Vec<f32>],
        cfg: &GenerateConfig,
        max_pos: usize,
        on_text: &mut dyn FnMut(usize, &str) -> Result<()>,
    ) -> Result<Vec<u32>> {
        let mut next = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter_mut().enumerate() {
            if row.stop.is_some() {
                next.push(self.tok.pad_id);
                continue;
            }
            let id = row.sampler.sample(&logits[i]);
            next.push(id);
            if cfg.stop_tokens.contains(&id) {
                row.stop = Some(StopReason::StopToken);
                continue;
            }
            row.tokens.push(id);
            let piece = row.stream.push(self.tok, id)?;
            if !piece.is_empty() {
                on_text(i, &piece)?;
            }
            if row.stream.stopped() {
                row.stop = Some(StopReason::StopString);
            } else if row.prompt_len + row.tokens.len() >= max_pos {
                row.stop = Some(StopReason::ContextFull);
            }
        }
        Ok(next)
    }

    /// Runs the ids sampled at decoding step `step` (one per row) through the model, extending
    /// the mask; the next-token logits of each row.
    fn feed(
        &self,
        next: Vec<u32>,
        rows: &[Row],
        step: usize,
        mask: &mut Tensor,
        ctx: &mut Ctx,
    ) -> Result<Vec<Vec<f32>>> {
        let b = rows.len();
        let ids = Tensor::from_vec(next, (b, 1), &self.device)?;
        if b > 1 {
            let p = self.virtual_len()?;
            let pos: Vec<u32> = rows
                .iter()
                .map(|r| (p + r.prompt_len + step) as u32)
                .collect();
            ctx.positions = Some(Tensor::from_vec(pos, (b, 1), &self.device)?);
            let one = Tensor::ones((b, 1), mask.dtype(), &self.device)?;
            *mask = Tensor::cat(&[&*mask, &one], 1)?;
            ctx.mask = Some(mask.clone());
        }
        self.last_logits(&self.lm.embed(&ids)?, ctx)
    }

    /// Runs the embeddings `h` (B, T, H) through the model (extending the cache); next-token
    /// logits of each row.
    pub(crate) fn last_logits(&self, h: &Tensor, ctx: &mut Ctx) -> Result<Vec<Vec<f32>>> {
        let h = self.lm.run_blocks(h, 0..self.lm.num_layers(), ctx)?;
        let t = h.dim(1)?;
        let last = self.lm.final_norm(&h.narrow(1, t - 1, 1)?)?;
        let logits = self.lm.logits(&last)?.squeeze(1)?.to_dtype(DType::F32)?;
        Ok(logits.to_vec2()?)
    }
}

/// The generation of each row once decoding ended, handing `on_text` the text a row's stream
/// still held back.
fn generations(
    tok: &TextTokenizer,
    rows: Vec<Row>,
    cached: usize,
    (prefill_seconds, decode_seconds): (f64, f64),
    on_text: &mut dyn FnMut(usize, &str) -> Result<()>,
) -> Result<Vec<Generation>> {
    rows.into_iter()
        .enumerate()
        .map(|(i, mut row)| {
            let rest = row.stream.flush(tok)?;
            if !rest.is_empty() {
                on_text(i, &rest)?;
            }
            Ok(Generation {
                text: row.stream.text(tok)?,
                tokens: row.tokens,
                stop: row.stop.unwrap_or(StopReason::MaxTokens),
                prompt_tokens: row.prompt_len,
                cached_tokens: cached,
                prefill_seconds,
                decode_seconds,
            })
        })
        .collect()
}

/// Puts a prefix's keys and values (per block, (1, kv heads, P, D)) in `ctx`'s empty cache as
/// the past of every one of `b` rows.
fn seed_cache(ctx: &mut Ctx, layers: &[(Tensor, Tensor)], b: usize) -> Result<()> {
    let cache = ctx
        .cache
        .as_mut()
        .ok_or_else(|| Error::Invalid("a prefix needs the decoding cache".into()))?;
    for (i, (k, v)) in layers.iter().enumerate() {
        let (_, heads, p, d) = k.dims4()?;
        let k = k.broadcast_as((b, heads, p, d))?.contiguous()?;
        let v = v.broadcast_as((b, heads, p, d))?.contiguous()?;
        cache.append(i, &k, &v)?;
    }
    Ok(())
}

/// Left-pads id sequences: ids (B, T) and mask (B, T) u32.
fn left_pad(seqs: &[Vec<u32>], pad: u32, dev: &Device) -> Result<(Tensor, Tensor)> {
    let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(seqs.len() * t);
    let mut mask = Vec::with_capacity(seqs.len() * t);
    for s in seqs {
        ids.extend(std::iter::repeat_n(pad, t - s.len()));
        ids.extend_from_slice(s);
        mask.extend(std::iter::repeat_n(0u32, t - s.len()));
        mask.extend(std::iter::repeat_n(1u32, s.len()));
    }
    Ok((
        Tensor::from_vec(ids, (seqs.len(), t), dev)?,
        Tensor::from_vec(mask, (seqs.len(), t), dev)?,
    ))
}
