//! `tuna train --method head|full|lora|adapter|prefix|prompt`: finetuning settings and the run.

use crate::args::{DataArgs, ModelArgs};
use crate::output::Output;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tuna_data::Metrics;
use tuna_nn::Pooling;
use tuna_train::finetune::{
    finetune, peak_rss_bytes, write_history, FinetuneConfig, LoraSettings, MethodConfig,
    MethodKind, Schedule, TrainConfig,
};
use tuna_train::run::{DataRecord, RunConfig, RunWriter};
use tuna_train::task_data::load_task_data;

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
    /// head: also train the last N blocks (and a decoder's final norm).
    #[arg(long, default_value_t = 0)]
    pub unfreeze_last: usize,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// LoRA alpha (the update is scaled by alpha / r).
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// Dropout on LoRA's input.
    #[arg(long, default_value_t = 0.1)]
    pub lora_dropout: f32,
    /// LoRA target modules by name, comma-separated (default: query,value / q_proj,v_proj).
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    /// LoRA target modules as a regular expression over full module names (instead of names).
    #[arg(long)]
    pub lora_target_regex: Option<String>,
    /// Bottleneck size of the adapters.
    #[arg(long, default_value_t = 64)]
    pub adapter_size: usize,
    /// Virtual tokens of prefix and prompt tuning.
    #[arg(long, default_value_t = 20)]
    pub virtual_tokens: usize,
    /// Hidden size of prefix tuning's reparameterisation MLP.
    #[arg(long, default_value_t = 512)]
    pub prefix_hidden: usize,
    /// Initialise the soft prompt from this text's tokens (default: random vocabulary tokens).
    #[arg(long)]
    pub prompt_init: Option<String>,
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
    /// Peak learning rate (default per method: head 2e-3, head with unfrozen blocks 1e-4,
    /// full 5e-5, lora 5e-4, adapter 1e-3, prefix 2e-4, prompt 3e-2).
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
    /// The run's settings for `kind`.
    pub fn config(
        &self,
        kind: MethodKind,
        pooling: Pooling,
        max_len: usize,
        seed: u64,
    ) -> FinetuneConfig {
        let lr = self.lr.unwrap_or(match kind {
            MethodKind::Head if self.unfreeze_last > 0 => 1e-4,
            MethodKind::Head => 2e-3,
            MethodKind::Full => 5e-5,
            MethodKind::Lora => 5e-4,
            MethodKind::Adapter => 1e-3,
            MethodKind::Prefix => 2e-4,
            MethodKind::Prompt => 3e-2,
        });
        FinetuneConfig {
            method: MethodConfig {
                kind,
                unfreeze_last: if kind == MethodKind::Head {
                    self.unfreeze_last
                } else {
                    0
                },
                lora: LoraSettings {
                    r: self.lora_r,
                    alpha: self.lora_alpha,
                    dropout: self.lora_dropout,
                    targets: self.lora_targets.clone(),
                    target_regex: self.lora_target_regex.clone(),
                },
                adapter_size: self.adapter_size,
                virtual_tokens: self.virtual_tokens,
                prefix_hidden: self.prefix_hidden,
                prompt_init: self.prompt_init.clone(),
                pooling,
                head_hidden: self.head_hidden,
                head_dropout: self.head_dropout,
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
            },
        }
    }
}

/// Runs a finetuning method and saves the run.
#[allow(clippy::too_many_arguments)]
pub fn run_finetune(
    out: &Output,
    kind: MethodKind,
    model_args: &ModelArgs,
    data_args: &DataArgs,
    args: &FinetuneArgs,
    pooling: Option<Pooling>,
    max_len: usize,
    dir: &Path,
    overwrite: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let spec = data_args.spec()?;
    let data = load_task_data(&spec)?;
    out.line(format!("data: {}", data.summary()));
    let (model, fp) = model_args.load()?;
    // A frozen backbone's only freedom is how its token states are combined: its head learns
    // the pooling. Every other method trains the states themselves and pools as the family does.
    let pooling = pooling.unwrap_or(if kind == MethodKind::Head && args.unfreeze_last == 0 {
        Pooling::Attention
    } else {
        model.info.family.default_pooling()
    });
    let cfg = args.config(kind, pooling, max_len, spec.seed);
    if cfg.train.epochs == 0 || cfg.train.batch_size == 0 {
        bail!("--epochs and --train-batch must be at least 1");
    }
    let source =
        std::fs::canonicalize(&model.info.source).unwrap_or_else(|_| model.info.source.clone());
    let model_params = model.info.parameters;
    let writer = if args.resume {
        RunWriter::reopen(dir)?
    } else {
        RunWriter::create(dir, overwrite)?
    };
    let bar = out.bar();
    let (_tm, res) = finetune(model, &data, &cfg, &writer, args.resume, &bar)?;
    let o = &res.outcome;
    let record = RunConfig {
        tuna_version: env!("CARGO_PKG_VERSION").into(),
        method: kind.name().into(),
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
    match (cfg.method.kind, cfg.method.unfreeze_last) {
        (MethodKind::Head, n) if n > 0 => format!("last-{n}"),
        (k, _) => k.name().to_string(),
    }
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
