//! Classification training of every finetuning method: the frozen states computed once, the
//! [`Classify`] stage run by the one loop ([`crate::optimize`]: seeded shuffling, gradient
//! accumulation, clipping, AdamW with warmup and decay, evaluation each epoch, the best epoch
//! kept, early stopping, checkpoints and resume), then the scores of the best epoch.

use super::classify::{by_length, probabilities_of, score, Classify, EVAL_BATCH};
use super::config::TrainConfig;
pub use super::examples::{Example, PartData};
use super::history::HistoryRow;
use super::params::Params;
use super::task_model::{Boundary, TaskModel};
use crate::optimize::{self, Checkpoints, Optimizer};
use crate::progress::Progress;
use crate::{Error, Result};
use candle_core::Tensor;
use std::path::PathBuf;
use std::time::Instant;
use tuna_data::{LabelMap, Metrics};
use tuna_models::tokenizer::pad_batch;

pub use super::classify::argmax;

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
        let params = std::mem::replace(&mut self.params, Params { list: vec![] });
        let mut opt = Optimizer::new(params, cfg, total)?;
        let mut stage = Classify {
            train,
            val,
            labels,
            boundary,
        };
        let ck = Checkpoints {
            dir: self.checkpoint_dir.as_deref(),
            settings: &self.settings,
            resume: self.resume,
        };
        let out = optimize::run(
            self.tm,
            &mut opt,
            &mut stage,
            train.examples.len(),
            &ck,
            self.progress,
        );
        self.params = opt.params;
        let out = out?;
        // The best epoch's values are installed (detached): score the parts with them.
        let (val_m, _) = score(self.tm, val, boundary, labels)?;
        let test_m = match test {
            Some(t) => Some(score(self.tm, t, boundary, labels)?.0),
            None => None,
        };
        self.params.install(self.tm, true)?;
        Ok(TrainOutcome {
            val: val_m,
            test: test_m,
            best_epoch: out.state.best_epoch,
            steps: out.state.step,
            history: out.state.history,
            train_seconds: out.state.seconds,
            cache_seconds,
            stopped_early: out.stopped_early,
            resumed_at: out.resumed_at,
            step_seconds: out.step_seconds,
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
        let res = probabilities_of(self.tm, part, boundary);
        self.params.install(self.tm, true)?;
        res
    }
}
