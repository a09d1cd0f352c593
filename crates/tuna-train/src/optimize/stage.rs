//! What a workflow supplies to the loop: the loss of a batch, the evaluation of the held-out
//! part, and the rows of its curves and progress line.

use crate::finetune::TaskModel;
use crate::Result;
use candle_core::Tensor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

/// Named metrics of a batch, each a mean over its items (averaged over the micro-batches of a
/// step by the loop).
pub type Values = BTreeMap<String, f64>;

/// One optimiser step, as the loop reports it to the stage.
pub struct StepReport<'a> {
    /// Optimiser steps done, this one included.
    pub step: usize,
    /// Epoch in progress (0-based).
    pub epoch_index: usize,
    /// Fractional epoch at the end of the step.
    pub epoch: f64,
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Mean loss over the step's micro-batches.
    pub loss: f64,
    /// The stage's batch metrics, averaged over the micro-batches.
    pub values: &'a Values,
    /// Training examples per second in this epoch so far.
    pub examples_per_second: f64,
}

/// Where an evaluation happens.
pub struct EvalPoint {
    /// Optimiser steps done (0: before training).
    pub step: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Learning rate of the last step taken.
    pub lr: f64,
}

/// What an evaluation gives the loop.
pub struct Evaluation<R> {
    /// The row added to the curves.
    pub row: R,
    /// The score the best epoch is chosen by (higher is better), with early stopping on it;
    /// none: every epoch is kept as it comes and the run ends with the last one.
    pub score: Option<f64>,
}

/// A training workflow run by [`super::run`].
pub trait Stage {
    /// One row of the curves (kept in the checkpointed loop state).
    type Row: Clone + Serialize + DeserializeOwned;

    /// Mean loss of the training items `idx`, with the trainable tensors tracked (dropout is
    /// active); batch metrics go in `values`.
    fn loss(&mut self, tm: &TaskModel, idx: &[usize], values: &mut Values) -> Result<Tensor>;

    /// The share of a batch's mean loss that its items `idx` carry, in any unit (the loss's
    /// denominator: items by default, tokens for a token mean). A batch split into micro-batches
    /// weights each piece's loss by it, so the gradient is the whole batch's.
    fn weight(&self, idx: &[usize]) -> f64 {
        idx.len() as f64
    }

    /// Held-out evaluation with the current weights (detached, no dropout).
    fn evaluate(&mut self, tm: &TaskModel, at: &EvalPoint) -> Result<Evaluation<Self::Row>>;

    /// The curves' row of an optimiser step.
    fn step_row(&self, step: &StepReport) -> Self::Row;

    /// The progress line after a step.
    fn message(&self, step: &StepReport, row: &Self::Row) -> String;

    /// Whether the loop evaluates once before the first step (the starting point of the curves).
    fn evaluates_first(&self) -> bool {
        false
    }
}
