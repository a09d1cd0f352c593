//! The stages that learn from a fixed set of items (supervised finetuning, reward model, DPO),
//! run by the one loop of `tuna-train` ([`tuna_train::optimize`]: seeded batch order, gradient
//! accumulation, checkpoints every N steps, resume), with an evaluation before training and
//! after each epoch, and their curves and reports.

use crate::log::LogRow;
use crate::optim::{checkpoint_dir, LoopState, Optimizer};
use candle_core::Tensor;
use std::path::Path;
use tuna_train::finetune::{TaskModel, TrainConfig};
use tuna_train::optimize::{self, Checkpoints, EvalPoint, Evaluation, StepReport, Values};
use tuna_train::{Progress, Result};

/// What a stage computes.
pub trait Stage {
    /// Mean loss of the training items `idx` (trainable tensors tracked); metrics go in `row`.
    fn loss(&mut self, tm: &TaskModel, idx: &[usize], row: &mut LogRow) -> Result<Tensor>;
    /// The share of a batch's mean loss that the items `idx` carry (items by default; see
    /// [`optimize::Stage::weight`]).
    fn weight(&self, idx: &[usize]) -> f64 {
        idx.len() as f64
    }
    /// Held-out metrics with the current weights (no graph), added to `row` as `eval_*`.
    fn evaluate(&mut self, tm: &TaskModel, row: &mut LogRow) -> Result<()>;
    /// Metrics shown on the progress bar.
    fn shown(&self) -> &'static [&'static str];
}

/// A [`Stage`] as the one loop of `tuna-train` runs it: the curves are [`LogRow`]s (the batch
/// metrics averaged over a step's micro-batches, with loss, learning rate, gradient norm and
/// epoch), an evaluation comes first, and no epoch is selected (the run ends with the last).
struct Logged<'a>(&'a mut dyn Stage);

/// The metrics an evaluation logs.
const EVAL_SHOWN: [&str; 3] = ["eval_loss", "eval_accuracy", "eval_margin"];

impl optimize::Stage for Logged<'_> {
    type Row = LogRow;

    fn loss(&mut self, tm: &TaskModel, idx: &[usize], values: &mut Values) -> Result<Tensor> {
        let mut part = LogRow::new(0);
        let loss = self.0.loss(tm, idx, &mut part)?;
        values.extend(part.values);
        Ok(loss)
    }

    fn weight(&self, idx: &[usize]) -> f64 {
        self.0.weight(idx)
    }

    fn evaluate(&mut self, tm: &TaskModel, at: &EvalPoint) -> Result<Evaluation<LogRow>> {
        let mut row = LogRow::new(at.step);
        self.0.evaluate(tm, &mut row)?;
        if at.step == 0 {
            tracing::info!("before training: {}", row.summary(&EVAL_SHOWN));
        } else {
            tracing::info!(epoch = at.epoch, "{}", row.summary(&EVAL_SHOWN));
        }
        Ok(Evaluation { row, score: None })
    }

    fn step_row(&self, s: &StepReport) -> LogRow {
        let mut row = LogRow::new(s.step);
        row.values = s.values.clone();
        row.set("loss", s.loss)
            .set("lr", s.lr)
            .set("grad_norm", s.grad_norm)
            .set("epoch", s.epoch);
        row
    }

    fn message(&self, _: &StepReport, row: &LogRow) -> String {
        row.summary(self.0.shown())
    }

    fn evaluates_first(&self) -> bool {
        true
    }
}

/// Makes the method's tensors of `tm` trainable (the head too with `with_head`) and runs `stage`
/// over its `n` items with the settings `cfg` (stored in checkpoints); returns the optimiser,
/// which holds the trained values, and the loop state.
#[allow(clippy::too_many_arguments)]
pub fn train_stage<C: serde::Serialize>(
    tm: &mut TaskModel,
    stage: &mut dyn Stage,
    n: usize,
    with_head: bool,
    cfg: &C,
    train: &TrainConfig,
    run: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<(Optimizer, LoopState)> {
    let names = crate::optim::trainable(tm, with_head)?;
    let mut opt = Optimizer::for_names(tm, &names, train.clone(), total_steps(n, train))?;
    tracing::info!(trainable = opt.count(), "trainable parameters");
    let settings =
        serde_json::to_string(cfg).map_err(|e| tuna_train::Error::Invalid(e.to_string()))?;
    let dir = checkpoint_dir(run);
    let ck = Checkpoints {
        dir: Some(&dir),
        settings: &settings,
        resume,
    };
    let out = optimize::run(tm, &mut opt, &mut Logged(stage), n, &ck, progress)?;
    Ok((opt, out.state))
}

/// Total optimiser steps for `n` items under `cfg`.
pub fn total_steps(n: usize, cfg: &TrainConfig) -> usize {
    let per_epoch = n.div_ceil(cfg.batch_size * cfg.grad_accum.max(1));
    let total = per_epoch * cfg.epochs;
    if cfg.max_steps > 0 {
        total.min(cfg.max_steps)
    } else {
        total
    }
}

/// Metrics of the last evaluation row.
pub fn last_eval(st: &LoopState) -> Option<&LogRow> {
    st.history
        .iter()
        .rev()
        .find(|r| r.values.keys().any(|k| k.starts_with("eval_")))
}

/// Metrics of the first evaluation row (before training).
pub fn first_eval(st: &LoopState) -> Option<&LogRow> {
    st.history
        .iter()
        .find(|r| r.values.keys().any(|k| k.starts_with("eval_")))
}

/// The value of `key` in `row` (NaN when absent).
pub fn value(row: Option<&LogRow>, key: &str) -> f64 {
    row.and_then(|r| r.values.get(key).copied())
        .unwrap_or(f64::NAN)
}

/// Writes `metrics.csv` and the chart `chart` (`left` and `right` metrics) into `run`.
pub fn write_log(
    run: &Path,
    st: &LoopState,
    chart: &str,
    title: &str,
    left: &[&str],
    right: &[&str],
) -> Result<()> {
    crate::log::write_csv(run, &st.history)?;
    crate::log::write_chart(&run.join(chart), title, &st.history, left, right)?;
    Ok(())
}

/// Removes the checkpoint of a run whose files are all written.
pub fn remove_checkpoint(run: &Path) -> Result<()> {
    let ck = checkpoint_dir(run);
    if ck.exists() {
        std::fs::remove_dir_all(&ck).map_err(|e| tuna_core::Error::io(&ck, e))?;
    }
    Ok(())
}
