//! The epoch loop of the stages that learn from a fixed set of items (supervised finetuning,
//! reward model, DPO): seeded batch order, gradient accumulation, an evaluation before training
//! and after each epoch, checkpoints every N steps, and resume.

use crate::log::LogRow;
use crate::optim::{checkpoint_dir, mix, LoopState, Optimizer};
use candle_core::Tensor;
use std::path::Path;
use std::time::Instant;
use tuna_core::Rng;
use tuna_nn::dropout::TrainScope;
use tuna_train::finetune::{TaskModel, TrainConfig};
use tuna_train::{Progress, Result};

/// What a stage computes.
pub trait Stage {
    /// Mean loss of the training items `idx` (trainable tensors tracked); metrics go in `row`.
    fn loss(&mut self, tm: &TaskModel, idx: &[usize], row: &mut LogRow) -> Result<Tensor>;
    /// Held-out metrics with the current weights (no graph), added to `row` as `eval_*`.
    fn evaluate(&mut self, tm: &TaskModel, row: &mut LogRow) -> Result<()>;
    /// Metrics shown on the progress bar.
    fn shown(&self) -> &'static [&'static str];
}

/// Runs `stage` over `n` training items for the epochs of `opt.cfg`, checkpointing in `run`.
#[allow(clippy::too_many_arguments)]
pub fn run_epochs(
    tm: &mut TaskModel,
    opt: &mut Optimizer,
    stage: &mut dyn Stage,
    n: usize,
    run: &Path,
    settings: &str,
    resume: bool,
    progress: &dyn Progress,
) -> Result<LoopState> {
    let cfg = opt.cfg.clone();
    let ck = checkpoint_dir(run);
    let mut st = if resume {
        opt.resume(&ck, settings)?
    } else {
        LoopState {
            settings: settings.to_string(),
            ..LoopState::default()
        }
    };
    if st.log.is_empty() {
        let mut row = LogRow::new(0);
        opt.install(tm, false)?;
        stage.evaluate(tm, &mut row)?;
        tracing::info!(
            "before training: {}",
            row.summary(&["eval_loss", "eval_accuracy", "eval_margin"])
        );
        st.log.push(row);
    }
    let total = opt.total;
    progress.start("training", total as u64);
    progress.advance(st.step as u64);
    let mut t0 = Instant::now();
    while st.epoch < cfg.epochs && st.step < total {
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(mix(cfg.seed, st.epoch, usize::MAX)).shuffle(&mut order);
        let batches: Vec<&[usize]> = order.chunks(cfg.batch_size).collect();
        while st.next_batch < batches.len() && st.step < total {
            let micro =
                &batches[st.next_batch..(st.next_batch + cfg.grad_accum.max(1)).min(batches.len())];
            opt.install(tm, true)?;
            let mut row = LogRow::new(st.step + 1);
            let mut loss_sum = 0.0;
            for (j, idx) in micro.iter().enumerate() {
                let _scope = TrainScope::new(mix(cfg.seed, st.step, j));
                let mut part = LogRow::new(0);
                let loss = stage.loss(tm, idx, &mut part)?;
                loss_sum += loss.to_scalar::<f32>()? as f64;
                opt.backward(&loss, 1.0 / micro.len() as f64)?;
                for (k, v) in part.values {
                    *row.values.entry(k).or_insert(0.0) += v / micro.len() as f64;
                }
            }
            let (lr, norm) = opt.step(st.step)?;
            st.step += 1;
            st.next_batch += micro.len();
            row.set("loss", loss_sum / micro.len() as f64)
                .set("lr", lr)
                .set("grad_norm", norm)
                .set(
                    "epoch",
                    st.epoch as f64 + st.next_batch as f64 / batches.len() as f64,
                );
            progress.message(&row.summary(stage.shown()));
            progress.advance(1);
            st.log.push(row);
            let end_of_epoch = st.next_batch >= batches.len();
            if end_of_epoch {
                st.epoch += 1;
                st.next_batch = 0;
                let mut row = LogRow::new(st.step);
                opt.install(tm, false)?;
                stage.evaluate(tm, &mut row)?;
                tracing::info!(
                    epoch = st.epoch,
                    "{}",
                    row.summary(&["eval_loss", "eval_accuracy", "eval_margin"])
                );
                st.log.push(row);
            }
            st.seconds += t0.elapsed().as_secs_f64();
            t0 = Instant::now();
            let due = cfg.checkpoint_every > 0 && st.step % cfg.checkpoint_every == 0;
            if due || end_of_epoch {
                opt.save(&ck, &st)?;
            }
            if end_of_epoch {
                break;
            }
        }
    }
    // A run cut short by --max-steps still ends with an evaluation.
    if st
        .log
        .last()
        .is_none_or(|r| !r.values.keys().any(|k| k.starts_with("eval_")))
    {
        let mut row = LogRow::new(st.step);
        opt.install(tm, false)?;
        stage.evaluate(tm, &mut row)?;
        st.log.push(row);
    }
    progress.finish();
    opt.install(tm, false)?;
    Ok(st)
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
    let mut opt = Optimizer::new(tm, &names, train.clone(), total_steps(n, train))?;
    tracing::info!(trainable = opt.count(), "trainable parameters");
    let settings =
        serde_json::to_string(cfg).map_err(|e| tuna_train::Error::Invalid(e.to_string()))?;
    let st = run_epochs(tm, &mut opt, stage, n, run, &settings, resume, progress)?;
    Ok((opt, st))
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
    st.log
        .iter()
        .rev()
        .find(|r| r.values.keys().any(|k| k.starts_with("eval_")))
}

/// Metrics of the first evaluation row (before training).
pub fn first_eval(st: &LoopState) -> Option<&LogRow> {
    st.log
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
    crate::log::write_csv(run, &st.log)?;
    crate::log::write_chart(&run.join(chart), title, &st.log, left, right)?;
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
