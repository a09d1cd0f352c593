//! The training loop shared by every finetuning method: seeded shuffling, gradient
//! accumulation, clipping, AdamW with warmup and decay, evaluation on the validation part each
//! epoch, the best epoch kept, early stopping, checkpoints and resume.

use super::adamw::{clip_grad_norm, AdamW};
use super::checkpoint::{self, LoopState};
use super::config::{lr_at, TrainConfig};
use super::history::HistoryRow;
use super::params::Params;
use super::task_model::{probabilities, Boundary, TaskModel};
use crate::progress::Progress;
use crate::{Error, Result};
use candle_core::Tensor;
use std::path::PathBuf;
use std::time::Instant;
use tuna_core::Rng;
use tuna_data::{evaluate, LabelMap, Metrics};
use tuna_models::tokenizer::pad_batch;
use tuna_nn::dropout::TrainScope;

/// One labelled example, tokenised.
#[derive(Debug, Clone)]
pub struct Example {
    pub ids: Vec<u32>,
    pub label: usize,
}

/// A part of the data (train, validation, test), with the frozen states when the method
/// starts past the input.
pub struct PartData {
    pub examples: Vec<Example>,
    states: Option<Vec<Tensor>>,
}

impl PartData {
    pub fn new(examples: Vec<Example>) -> Self {
        Self {
            examples,
            states: None,
        }
    }

    fn labels(&self) -> Vec<usize> {
        self.examples.iter().map(|e| e.label).collect()
    }
}

/// What training produced.
pub struct TrainOutcome {
    pub val: Metrics,
    pub test: Option<Metrics>,
    pub best_epoch: Option<usize>,
    pub steps: usize,
    pub history: Vec<HistoryRow>,
    /// Seconds in the loop (training and evaluation), over all resumed pieces.
    pub train_seconds: f64,
    /// Seconds computing frozen states once.
    pub cache_seconds: f64,
    pub stopped_early: bool,
    /// Optimiser step the run resumed from.
    pub resumed_at: Option<usize>,
    /// Median seconds of one optimiser step.
    pub step_seconds: f64,
}

/// Drives one method's training.
pub struct Trainer<'a> {
    pub tm: &'a mut TaskModel,
    pub params: Params,
    pub cfg: TrainConfig,
    /// Where checkpoints go (none: no checkpoints).
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint in `checkpoint_dir`.
    pub resume: bool,
    /// JSON of the run's settings, stored in checkpoints and checked on resume.
    pub settings: String,
    pub progress: &'a dyn Progress,
}

const EVAL_BATCH: usize = 64;

impl Trainer<'_> {
    /// Trains on `train`, selecting the epoch by accuracy on `val`, and scores `test` with it.
    pub fn run(
        &mut self,
        train: &mut PartData,
        val: &mut PartData,
        mut test: Option<&mut PartData>,
        labels: &LabelMap,
    ) -> Result<TrainOutcome> {
        if train.examples.is_empty() || val.examples.is_empty() {
            return Err(Error::Invalid(
                "training and validation parts must not be empty".into(),
            ));
        }
        let boundary = self.tm.boundary();
        let t_cache = Instant::now();
        if boundary != Boundary::Input {
            self.cache_states(train, boundary)?;
            self.cache_states(val, boundary)?;
            if let Some(t) = test.as_deref_mut() {
                self.cache_states(t, boundary)?;
            }
        }
        let cache_seconds = t_cache.elapsed().as_secs_f64();
        let cfg = self.cfg.clone();
        let n_batches = train.examples.len().div_ceil(cfg.batch_size);
        let steps_per_epoch = n_batches.div_ceil(cfg.grad_accum.max(1));
        let mut total = steps_per_epoch * cfg.epochs;
        if cfg.max_steps > 0 {
            total = total.min(cfg.max_steps);
        }
        let mut opt = AdamW::new(&self.params.list)?;
        let mut st = LoopState {
            epoch: 0,
            next_batch: 0,
            step: 0,
            best_val: f64::NEG_INFINITY,
            best_epoch: None,
            bad_epochs: 0,
            history: vec![],
            seconds: 0.0,
            settings: self.settings.clone(),
            done: false,
        };
        let mut best: Option<Vec<Tensor>> = None;
        let mut resumed_at = None;
        if self.resume {
            let found = self.checkpoint_dir.as_deref().and_then(checkpoint::find);
            let Some(dir) = found else {
                return Err(Error::Invalid(
                    "--resume: no checkpoint to resume from".into(),
                ));
            };
            let (s, b): (LoopState, _) =
                checkpoint::load(&dir, &self.params, &mut opt, &self.tm.model.device)?;
            if s.settings != self.settings {
                return Err(Error::Invalid(format!(
                    "--resume: the checkpoint in {} was made with other settings; rerun with the same command line",
                    dir.display()
                )));
            }
            tracing::info!(step = s.step, epoch = s.epoch, "resuming");
            resumed_at = Some(s.step);
            st = s;
            best = b;
        }
        let t0 = Instant::now();
        let base_seconds = st.seconds;
        let mut step_times = vec![];
        let mut stopped_early = false;
        self.progress.start("training", total as u64);
        self.progress.advance(st.step as u64);
        'epochs: while st.epoch < cfg.epochs && !st.done {
            let order = epoch_order(train.examples.len(), cfg.seed, st.epoch);
            let batches: Vec<&[usize]> = order.chunks(cfg.batch_size).collect();
            let mut grads: Option<Vec<Tensor>> = None;
            let mut losses = vec![];
            let mut t_step = Instant::now();
            let mut seen = 0usize;
            let t_epoch = Instant::now();
            while st.next_batch < batches.len() {
                let j = st.next_batch;
                let idx = batches[j];
                let loss = {
                    let _scope = TrainScope::new(mix(cfg.seed, st.epoch, j));
                    let logits = self.logits(train, idx, boundary)?;
                    let gold: Vec<u32> = idx
                        .iter()
                        .map(|&i| train.examples[i].label as u32)
                        .collect();
                    let gold = Tensor::new(gold.as_slice(), logits.device())?;
                    candle_nn::loss::cross_entropy(&logits, &gold)?
                };
                losses.push(loss.to_scalar::<f32>()? as f64);
                let scaled = (loss / cfg.grad_accum.max(1) as f64)?;
                let g = scaled.backward()?;
                let fresh: Vec<Tensor> = self
                    .params
                    .list
                    .iter()
                    .map(|p| match g.get(&p.var) {
                        Some(t) => Ok(t.clone()),
                        None => p.var.as_tensor().zeros_like(),
                    })
                    .collect::<candle_core::Result<_>>()?;
                grads = Some(match grads.take() {
                    None => fresh,
                    Some(acc) => acc
                        .iter()
                        .zip(&fresh)
                        .map(|(a, b)| a + b)
                        .collect::<candle_core::Result<_>>()?,
                });
                seen += idx.len();
                st.next_batch += 1;
                let last = st.next_batch == batches.len();
                if st.next_batch % cfg.grad_accum.max(1) != 0 && !last {
                    continue;
                }
                let mut g = grads.take().unwrap_or_default();
                clip_grad_norm(&mut g, cfg.clip)?;
                let lr = lr_at(&cfg, st.step, total);
                opt.step(&self.params.list, &g, lr, cfg.weight_decay)?;
                st.step += 1;
                let mean = losses.iter().sum::<f64>() / losses.len() as f64;
                losses.clear();
                st.history.push(HistoryRow {
                    step: st.step,
                    epoch: st.epoch as f64 + st.next_batch as f64 / batches.len() as f64,
                    lr,
                    loss: Some(mean),
                    val_accuracy: None,
                    val_loss: None,
                });
                step_times.push(t_step.elapsed().as_secs_f64());
                t_step = Instant::now();
                self.progress.advance(1);
                self.progress.message(&format!(
                    "epoch {} loss {mean:.4} lr {lr:.2e} {:.1} ex/s",
                    st.epoch + 1,
                    seen as f64 / t_epoch.elapsed().as_secs_f64().max(1e-9)
                ));
                let budget_hit = cfg.max_steps > 0 && st.step >= cfg.max_steps;
                if cfg.checkpoint_every > 0
                    && st.step % cfg.checkpoint_every == 0
                    && !last
                    && !budget_hit
                {
                    st.seconds = base_seconds + t0.elapsed().as_secs_f64();
                    self.save_checkpoint(&st, &opt, best.as_deref())?;
                }
                if budget_hit {
                    st.done = true;
                    break;
                }
            }
            // End of epoch (or of the step budget): evaluate and keep the best.
            let (acc, vloss) = self.score(val, boundary, labels)?;
            st.history.push(HistoryRow {
                step: st.step,
                epoch: st.epoch as f64 + st.next_batch as f64 / batches.len() as f64,
                lr: lr_at(&cfg, st.step.saturating_sub(1), total),
                loss: None,
                val_accuracy: Some(acc.accuracy),
                val_loss: Some(vloss),
            });
            tracing::info!(
                epoch = st.epoch + 1,
                val_accuracy = acc.accuracy,
                val_loss = vloss,
                "epoch done"
            );
            if acc.accuracy > st.best_val {
                st.best_val = acc.accuracy;
                st.best_epoch = Some(st.epoch);
                st.bad_epochs = 0;
                best = Some(self.params.snapshot()?);
            } else {
                st.bad_epochs += 1;
            }
            st.epoch += 1;
            st.next_batch = 0;
            if cfg.patience > 0 && st.bad_epochs >= cfg.patience {
                stopped_early = st.epoch < cfg.epochs;
                st.done = true;
            }
            st.seconds = base_seconds + t0.elapsed().as_secs_f64();
            self.save_checkpoint(&st, &opt, best.as_deref())?;
            if st.done {
                break 'epochs;
            }
        }
        self.progress.finish();
        if let Some(b) = &best {
            self.params.restore(b)?;
        }
        let (val_m, _) = self.score(val, boundary, labels)?;
        let test_m = match test {
            Some(t) => Some(self.score(t, boundary, labels)?.0),
            None => None,
        };
        step_times.sort_by(f64::total_cmp);
        Ok(TrainOutcome {
            val: val_m,
            test: test_m,
            best_epoch: st.best_epoch,
            steps: st.step,
            history: st.history,
            train_seconds: base_seconds + t0.elapsed().as_secs_f64(),
            cache_seconds,
            stopped_early,
            resumed_at,
            step_seconds: step_times.get(step_times.len() / 2).copied().unwrap_or(0.0),
        })
    }

    fn save_checkpoint(&self, st: &LoopState, opt: &AdamW, best: Option<&[Tensor]>) -> Result<()> {
        if let Some(dir) = &self.checkpoint_dir {
            checkpoint::save(dir, st, &self.params, opt, best)?;
        }
        Ok(())
    }

    /// Logits of the examples `idx` of `part`.
    fn logits(&self, part: &PartData, idx: &[usize], boundary: Boundary) -> Result<Tensor> {
        let seqs: Vec<&[u32]> = idx
            .iter()
            .map(|&i| part.examples[i].ids.as_slice())
            .collect();
        let batch = pad_batch(&seqs, self.tm.model.tokenizer.pad_id, &self.tm.model.device)?;
        Ok(match (boundary, &part.states) {
            (Boundary::Input, _) | (_, None) => self.tm.logits(&batch)?,
            (Boundary::Pooled, Some(states)) => {
                let rows: Vec<&Tensor> = idx.iter().map(|&i| &states[i]).collect();
                self.tm
                    .logits_from(&Tensor::stack(&rows, 0)?, &batch.mask, boundary)?
            }
            (Boundary::Block(_), Some(states)) => {
                let t = batch.ids.dim(1)?;
                let rows = idx
                    .iter()
                    .map(|&i| {
                        let s = &states[i];
                        let (len, h) = s.dims2()?;
                        if len == t {
                            Ok(s.clone())
                        } else {
                            let pad = Tensor::zeros((t - len, h), s.dtype(), s.device())?;
                            Tensor::cat(&[s, &pad], 0)
                        }
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                self.tm
                    .logits_from(&Tensor::stack(&rows, 0)?, &batch.mask, boundary)?
            }
        })
    }

    /// Computes the frozen part's output for every example once.
    fn cache_states(&self, part: &mut PartData, boundary: Boundary) -> Result<()> {
        let n = part.examples.len();
        let mut states: Vec<Option<Tensor>> = vec![None; n];
        self.progress.start("computing frozen states", n as u64);
        for idx in by_length(&part.examples).chunks(EVAL_BATCH) {
            let seqs: Vec<&[u32]> = idx
                .iter()
                .map(|&i| part.examples[i].ids.as_slice())
                .collect();
            let batch = pad_batch(&seqs, self.tm.model.tokenizer.pad_id, &self.tm.model.device)?;
            let out = self.tm.frozen_states(&batch, boundary)?;
            for (k, &i) in idx.iter().enumerate() {
                let row = out.get(k)?;
                let row = match boundary {
                    Boundary::Block(_) => row.narrow(0, 0, batch.lengths[k])?,
                    _ => row,
                };
                // A compact copy: `copy()` would keep the whole batch's storage alive.
                states[i] = Some(row.force_contiguous()?);
            }
            self.progress.advance(idx.len() as u64);
        }
        self.progress.finish();
        part.states = Some(
            states
                .into_iter()
                .map(|s| s.expect("every row computed"))
                .collect(),
        );
        Ok(())
    }

    /// Class probabilities of every example of `part`, with the current weights (no graph).
    pub fn predict(&mut self, part: &PartData, boundary: Boundary) -> Result<Vec<Vec<f32>>> {
        self.params.install(self.tm, false)?;
        let mut out = vec![vec![]; part.examples.len()];
        let res = (|| -> Result<()> {
            for idx in by_length(&part.examples).chunks(EVAL_BATCH) {
                let probs = probabilities(&self.logits(part, idx, boundary)?)?;
                for (k, &i) in idx.iter().enumerate() {
                    out[i] = probs[k].clone();
                }
            }
            Ok(())
        })();
        self.params.install(self.tm, true)?;
        res.map(|_| out)
    }

    /// Metrics and mean cross-entropy on `part`.
    fn score(
        &mut self,
        part: &PartData,
        boundary: Boundary,
        labels: &LabelMap,
    ) -> Result<(Metrics, f64)> {
        let probs = self.predict(part, boundary)?;
        let gold = part.labels();
        let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
        let loss = probs
            .iter()
            .zip(&gold)
            .map(|(p, &g)| -(p[g].max(1e-12) as f64).ln())
            .sum::<f64>()
            / gold.len().max(1) as f64;
        Ok((evaluate(&gold, &pred, labels), loss))
    }
}

/// Index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Example indices sorted by length (less padding per batch), ties by index.
fn by_length(ex: &[Example]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..ex.len()).collect();
    idx.sort_by_key(|&i| (ex[i].ids.len(), i));
    idx
}

/// The shuffled order of epoch `epoch`, a function of the seed and the epoch only.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    Rng::new(mix(seed, epoch, usize::MAX)).shuffle(&mut idx);
    idx
}

/// A seed for (run seed, epoch, batch).
fn mix(seed: u64, epoch: usize, batch: usize) -> u64 {
    let mut r = Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    r.next_u64() ^ (batch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}
