//! The trainable tensors with their AdamW state and accumulated gradients: one optimiser step
//! (clipping, the schedule's learning rate, the update), the one step counter, and the
//! checkpoint of values, moments and loop state with its resume check.

use super::accumulate::GradAccumulator;
use super::state::LoopState;
use crate::finetune::adamw::AdamW;
use crate::finetune::checkpoint;
use crate::finetune::config::{lr_at, TrainConfig};
use crate::finetune::params::Params;
use crate::finetune::TaskModel;
use crate::{Error, Result};
use candle_core::Tensor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// The trainable tensors of a run and their optimiser.
pub struct Optimizer {
    pub params: Params,
    adam: AdamW,
    pub cfg: TrainConfig,
    /// Optimiser steps of the whole run (the schedule's length).
    pub total: usize,
    acc: GradAccumulator,
}

impl Optimizer {
    /// An optimiser for `params` with the settings `cfg` over `total` steps.
    pub fn new(params: Params, cfg: TrainConfig, total: usize) -> Result<Self> {
        let adam = AdamW::new(&params.list)?;
        Ok(Self {
            params,
            adam,
            cfg,
            total: total.max(1),
            acc: GradAccumulator::default(),
        })
    }

    /// Makes the tensors `names` of `tm` trainable variables and an optimiser for them.
    pub fn for_names(
        tm: &mut TaskModel,
        names: &[String],
        cfg: TrainConfig,
        total: usize,
    ) -> Result<Self> {
        Self::new(Params::create(tm, names)?, cfg, total)
    }

    /// Number of trainable values.
    pub fn count(&self) -> usize {
        self.params.count()
    }

    /// Optimiser steps done (restored on resume): the one step counter of a run.
    pub fn steps(&self) -> usize {
        self.adam.t
    }

    /// The schedule's learning rate at step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        lr_at(&self.cfg, step, self.total)
    }

    /// Adds the gradients of `loss * weight` (1 / micro-batches per step, say).
    pub fn backward(&mut self, loss: &Tensor, weight: f64) -> Result<()> {
        let grads = (loss * weight)?.backward()?;
        self.acc.add(&self.params.list, &grads)?;
        Ok(())
    }

    /// One AdamW step with the accumulated gradients at the schedule's learning rate for the
    /// next step; returns (learning rate, gradient norm before clipping).
    pub fn step(&mut self) -> Result<(f64, f64)> {
        let Some(grads) = self.acc.take() else {
            return Err(Error::Invalid("optimiser step without gradients".into()));
        };
        let lr = self.lr_at(self.adam.t);
        let norm = self.adam.clipped_step(
            &self.params.list,
            &grads,
            self.cfg.clip,
            lr,
            self.cfg.weight_decay,
        )?;
        Ok((lr, norm))
    }

    /// Puts the current values into `tm`: tracked for training, detached for inference.
    pub fn install(&self, tm: &mut TaskModel, tracked: bool) -> Result<()> {
        Ok(self.params.install(tm, tracked)?)
    }

    /// Writes a checkpoint of the values, the optimiser, the best values and `state` into `dir`
    /// atomically.
    pub fn save<R: Serialize>(
        &self,
        dir: &Path,
        state: &LoopState<R>,
        best: Option<&[Tensor]>,
    ) -> Result<()> {
        checkpoint::save(dir, state, &self.params, &self.adam, best)
    }

    /// Restores the checkpoint in `dir` (or its previous copy); returns the loop state and the
    /// best values. An error if there is none, or if it was made with other settings than
    /// `settings` (the run's settings as JSON).
    pub fn resume<R: DeserializeOwned>(
        &mut self,
        dir: &Path,
        settings: &str,
    ) -> Result<(LoopState<R>, Option<Vec<Tensor>>)> {
        let found = checkpoint::find(dir).ok_or_else(|| {
            Error::Invalid(format!(
                "--resume: no checkpoint in {} to resume from",
                dir.display()
            ))
        })?;
        // The settings first: a checkpoint of other settings may hold tensors of other shapes.
        let (recorded, _): (LoopState<R>, usize) =
            tuna_core::fsutil::read_json(&found.join("state.json"))?;
        if recorded.settings != settings {
            return Err(Error::Invalid(format!(
                "--resume: the checkpoint in {} was made with other settings; rerun with the same command line",
                found.display()
            )));
        }
        let device = match self.params.list.first() {
            Some(p) => p.var.device().clone(),
            None => candle_core::Device::Cpu,
        };
        let (state, best): (LoopState<R>, _) =
            checkpoint::load(&found, &self.params, &mut self.adam, &device)?;
        tracing::info!(step = state.step, epoch = state.epoch, "resuming");
        Ok((state, best))
    }
}
