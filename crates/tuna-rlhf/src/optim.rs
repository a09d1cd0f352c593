//! The optimisation side shared by every RLHF stage: which tensors train, gradient
//! accumulation, clipping, AdamW with warmup and decay, and checkpoints of the values, the
//! optimiser and the loop position (so `--resume` continues where a kill stopped it).

use crate::log::LogRow;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tuna_train::finetune::adamw::{clip_grad_norm, AdamW};
use tuna_train::finetune::config::lr_at;
use tuna_train::finetune::params::{trainable_names, Params};
use tuna_train::finetune::{checkpoint, TaskModel, TrainConfig};

/// Where a stage's loop stands; saved in every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoopState {
    /// Optimiser steps done.
    pub step: usize,
    pub epoch: usize,
    /// Next batch of the epoch.
    pub next_batch: usize,
    pub log: Vec<LogRow>,
    /// Seconds of work over all resumed pieces.
    pub seconds: f64,
    /// The stage's settings as JSON: a resume must use the same.
    pub settings: String,
}

/// The trainable tensors of `tm` and their optimiser.
pub struct Optimizer {
    pub params: Params,
    adam: AdamW,
    pub cfg: TrainConfig,
    /// Optimiser steps of the whole run.
    pub total: usize,
    acc: Option<Vec<Tensor>>,
}

/// Names of the tensors `tm`'s method trains; the new head only with `with_head` (a value or
/// reward head), never for a plain language model.
pub fn trainable(tm: &mut TaskModel, with_head: bool) -> Result<Vec<String>> {
    let names = trainable_names(tm)?;
    Ok(names
        .into_iter()
        .filter(|n| with_head || !tm.head.owns(n))
        .collect())
}

impl Optimizer {
    /// Makes `names` trainable variables of `tm`.
    pub fn new(
        tm: &mut TaskModel,
        names: &[String],
        cfg: TrainConfig,
        total: usize,
    ) -> Result<Self> {
        let params = Params::create(tm, names)?;
        let adam = AdamW::new(&params.list)?;
        Ok(Self {
            params,
            adam,
            cfg,
            total: total.max(1),
            acc: None,
        })
    }

    /// Number of trainable values.
    pub fn count(&self) -> usize {
        self.params.count()
    }

    /// Adds the gradients of `loss`, scaled by `weight` (1 / micro-batches per step, say).
    pub fn backward(&mut self, loss: &Tensor, weight: f64) -> Result<()> {
        let grads = (loss * weight)?.backward()?;
        let mut sum = Vec::with_capacity(self.params.list.len());
        for (i, p) in self.params.list.iter().enumerate() {
            let g = match grads.get(p.var.as_tensor()) {
                Some(g) => g.clone(),
                None => p.var.as_tensor().zeros_like()?,
            };
            sum.push(match &self.acc {
                Some(a) => (&a[i] + g)?,
                None => g,
            });
        }
        self.acc = Some(sum);
        Ok(())
    }

    /// One AdamW step with the accumulated gradients at the schedule's learning rate for step
    /// `step`; returns (learning rate, gradient norm before clipping).
    pub fn step(&mut self, step: usize) -> Result<(f64, f64)> {
        let Some(mut grads) = self.acc.take() else {
            candle_core::bail!("optimiser step without gradients");
        };
        let norm = clip_grad_norm(&mut grads, self.cfg.clip)?;
        let lr = lr_at(&self.cfg, step, self.total);
        self.adam
            .step(&self.params.list, &grads, lr, self.cfg.weight_decay)?;
        Ok((lr, norm))
    }

    /// Puts the current values into `tm`: tracked for training, detached for inference.
    pub fn install(&self, tm: &mut TaskModel, tracked: bool) -> Result<()> {
        self.params.install(tm, tracked)
    }

    /// Writes a checkpoint of the values, the optimiser and `state` into `dir` atomically.
    pub fn save(&self, dir: &Path, state: &LoopState) -> tuna_train::Result<()> {
        checkpoint::save(dir, state, &self.params, &self.adam, None)
    }

    /// Restores the checkpoint in `dir` (or its previous copy); an error if none, or if it was
    /// made with other settings than `settings`.
    pub fn resume(&mut self, dir: &Path, settings: &str) -> tuna_train::Result<LoopState> {
        let found = checkpoint::find(dir).ok_or_else(|| {
            tuna_train::Error::Invalid(format!(
                "--resume: no checkpoint in {} to resume from",
                dir.display()
            ))
        })?;
        let device = self.params.list[0].var.device().clone();
        let (state, _): (LoopState, _) =
            checkpoint::load(&found, &self.params, &mut self.adam, &device)?;
        if state.settings != settings {
            return Err(tuna_train::Error::Invalid(format!(
                "--resume: the checkpoint in {} was made with other settings; rerun with the same command line",
                found.display()
            )));
        }
        Ok(state)
    }
}

/// A seed for step-level randomness (dropout, batch order) from the run seed and two counters.
pub fn mix(seed: u64, a: usize, b: usize) -> u64 {
    let mut x = seed ^ (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (b as u64).rotate_left(32);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// Checkpoint folder of a run directory.
pub fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}
