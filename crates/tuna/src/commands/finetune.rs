//! `tuna train --method head|full|lora|dora|ia3|adapter|prefix|prompt`: finetuning settings and
//! the run.

use crate::args::{DataArgs, ModelArgs};
use crate::output::Output;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tuna_adapt::{MethodArgs, MethodName};
use tuna_data::Metrics;
use tuna_nn::Pooling;
use tuna_train::finetune::{
    finetune, peak_rss_bytes, write_history, FinetuneConfig, HeadConfig, Schedule, TrainConfig,
};
use tuna_train::run::{DataRecord, RunConfig, RunWriter};
use tuna_train::run_model::relative_to_run;

/// Where runs go without --out: `runs/<method>-<UTC time>[-N]`, a new name for every run.
pub const RUNS: &str = "runs";

/// Learning-rate schedule after warmup.
#[derive(Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Linear,
    Cosine,
    Constant,
}

/// Settings of the finetuning methods (ignored by `--method features`).
#[derive(Args, Clone)]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub method: MethodArgs,
    /// Hidden layer size of the new head (0: one linear layer).
    #[arg(long, default_value_t = 0)]
    pub head_hidden: usize,
    /// Dropout before the head.
    #[arg(long, default_value_t = 0.1)]
    pub head_dropout: f32,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Examples per batch.
    #[arg(long, default_value_t = 16)]
    pub train_batch: usize,
    /// Batches per optimiser step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Examples run forward and backward at once, a batch in pieces whose gradients add up to
    /// the batch's: less memory, the same update (default: the whole batch; sft, reward and
    /// dpo: 2).
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Peak learning rate (default: the method's own, printed at the start; see the README).
    #[arg(long)]
    pub lr: Option<f64>,
    /// AdamW weight decay (not applied to biases, norms and embeddings of prompts).
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Share of the steps for linear warmup.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    /// Learning-rate decay after warmup.
    #[arg(long, value_enum, default_value = "linear")]
    pub schedule: ScheduleArg,
    /// Clip the global gradient norm to this (0: off).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Stop after N epochs without a better validation accuracy (0: never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Checkpoint every N optimiser steps (and at each epoch's end).
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: usize,
    /// Stop after N optimiser steps (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_steps: usize,
    /// Continue the stopped run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
}

impl FinetuneArgs {
    /// The run's settings for method `name`.
    pub fn config(
        &self,
        name: MethodName,
        pooling: Pooling,
        max_len: usize,
        seed: u64,
    ) -> FinetuneConfig {
        let method = self.method.method(name);
        let lr = self.lr.unwrap_or(method.default_lr());
        FinetuneConfig {
            method,
            head: HeadConfig {
                pooling,
                hidden: self.head_hidden,
                dropout: self.head_dropout,
            },
            train: TrainConfig {
                epochs: self.epochs,
                batch_size: self.train_batch,
                grad_accum: self.grad_accum.max(1),
                lr,
                weight_decay: self.weight_decay,
                warmup: self.warmup,
                schedule: match self.schedule {
                    ScheduleArg::Linear => Schedule::Linear,
                    ScheduleArg::Cosine => Schedule::Cosine,
                    ScheduleArg::Constant => Schedule::Constant,
                },
                clip: self.clip,
                max_len,
                seed,
                patience: self.patience,
                checkpoint_every: self.checkpoint_every,
                max_steps: self.max_steps,
                micro_batch: self.micro_batch.unwrap_or(0),
            },
        }
    }
}

/// Runs a finetuning method and saves the run.
#[allow(clippy::too_many_arguments)]
pub fn run_finetune(
    out: &Output,
    kind: MethodName,
    model_args: &ModelArgs,
    data_args: &DataArgs,
    args: &FinetuneArgs,
    pooling: Option<Pooling>,
    max_len: usize,
    out_dir: Option<&Path>,
    overwrite: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let (data, spec) = data_args.load(out)?;
    out.line(format!("data: {}", data.summary()));
    let (model, fp) = model_args.load()?;
    // A frozen backbone's only freedom is how its token states are combined: its head learns
    // the pooling. Every other method trains the states themselves and pools as the family does.
    let pooling = pooling.unwrap_or(
        if kind == MethodName::Head && args.method.head.unfreeze_last == 0 {
            Pooling::Attention
        } else {
            model.info.family.default_pooling()
        },
    );
    let cfg = args.config(kind, pooling, max_len, spec.seed);
    out.line(format!(
        "method {}, peak learning rate {:e}",
        cfg.method.label(),
        cfg.train.lr
    ));
    if cfg.train.epochs == 0 || cfg.train.batch_size == 0 {
        bail!("--epochs and --train-batch must be at least 1");
    }
    let source =
        std::fs::canonicalize(&model.info.source).unwrap_or_else(|_| model.info.source.clone());
    let model_params = model.info.parameters;
    let writer = match (out_dir, args.resume) {
        (Some(dir), true) => RunWriter::reopen(dir, overwrite)?,
        (Some(dir), false) => RunWriter::create(dir, overwrite)?,
        (None, true) => bail!("--resume needs --out: the run directory to continue"),
        (None, false) => RunWriter::create_new(Path::new(RUNS), kind.as_str())?,
    };
    let bar = out.bar();
    let (_tm, res) = finetune(model, &data, &cfg, &writer, args.resume, &bar)?;
    let o = &res.outcome;
    let record = RunConfig {
        tuna_version: env!("CARGO_PKG_VERSION").into(),
        method: kind.as_str().into(),
        model_from_run: relative_to_run(&source, writer.dir()),
        model: source,
        model_fingerprint: fp,
        features: None,
        finetune: Some(cfg.clone()),
        data: DataRecord::of(&data, &spec),
    };
    let peak = peak_rss_bytes();
    let total = t0.elapsed().as_secs_f64();
    let metrics = json!({
        "validation": o.val, "test": o.test, "best_epoch": o.best_epoch.map(|e| e + 1),
        "steps": o.steps, "train_seconds": o.train_seconds, "cache_seconds": o.cache_seconds,
        "total_seconds": total, "median_step_seconds": o.step_seconds,
        "stopped_early": o.stopped_early, "resumed_at_step": o.resumed_at,
        "trainable_parameters": res.trainable, "model_parameters": model_params,
        "peak_rss_bytes": peak,
    });
    writer.json("config.json", &record)?;
    data.labels.save(&writer.path("labels.json"))?;
    writer.json("metrics.json", &metrics)?;
    write_history(
        &writer,
        &res,
        &format!("tuna train --method {}", label(&cfg)),
    )?;
    let dir: PathBuf = writer.commit()?;
    out.line(format!(
        "trainable parameters: {} of {} ({:.3}%)",
        res.trainable,
        model_params,
        100.0 * res.trainable as f64 / model_params.max(1) as f64
    ));
    report(out, "validation", &o.val);
    if let Some(t) = &o.test {
        report(out, "test", t);
        out.line(t.confusion_markdown());
    }
    out.line(format!(
        "{} steps in {:.1}s (median step {:.3}s), peak memory {:.0} MiB; run saved in {}",
        o.steps,
        o.train_seconds,
        o.step_seconds,
        peak as f64 / (1 << 20) as f64,
        dir.display()
    ));
    out.result(json!({
        "ok": true, "command": "train", "method": label(&cfg), "run": dir,
        "validation": summary(&o.val), "test": o.test.as_ref().map(summary),
        "trainable_parameters": res.trainable, "train_seconds": o.train_seconds,
        "total_seconds": total, "median_step_seconds": o.step_seconds,
        "peak_rss_bytes": peak, "best_epoch": o.best_epoch.map(|e| e + 1), "steps": o.steps,
    }));
    Ok(())
}

/// `head`, `last-2`, `lora`, ...
pub fn label(cfg: &FinetuneConfig) -> String {
    cfg.method.label()
}

pub fn report(out: &Output, part: &str, m: &Metrics) {
    out.line(format!(
        "{part}: accuracy {:.2}%  macro-F1 {:.2}%  (n = {})",
        m.accuracy * 100.0,
        m.macro_f1 * 100.0,
        m.n
    ));
}

pub fn summary(m: &Metrics) -> serde_json::Value {
    json!({"accuracy": m.accuracy, "macro_f1": m.macro_f1, "n": m.n, "confusion": m.confusion})
}
