//! What the RLHF verbs (`sft`, `reward`, `dpo`, `ppo`) share: the run directory with its
//! config and metrics, the method and prompt-format arguments.

use crate::args::ModelArgs;
use crate::commands::finetune::FinetuneArgs;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use tuna_adapt::MethodName;
use tuna_models::{Model, TextTokenizer};
use tuna_nn::Pooling;
use tuna_rlhf::FormatKind;
use tuna_train::finetune::{peak_rss_bytes, FinetuneConfig};
use tuna_train::run::RunWriter;
use tuna_train::run_model::relative_to_run;

/// Examples per forward and backward in sft, reward and dpo unless `--micro-batch` says otherwise:
/// decoder sequences of hundreds of tokens, whose activations dominate a step's memory.
const STAGE_MICRO_BATCH: usize = 2;

/// What every RLHF verb takes: the model, the data, the run directory and the training settings.
#[derive(Args)]
pub struct StageArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The data: instructions ({instruction, input, output}) for sft and the prompts of ppo;
    /// preference pairs ({instruction, input, chosen, rejected}, or HH-RLHF {chosen, rejected}
    /// dialogues) for reward and dpo. A JSON list or JSONL, optionally gzipped (.gz).
    #[arg(long, short)]
    pub data: PathBuf,
    /// Use only N records, drawn with --seed and kept in file order (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Run directory to create.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Replace the run directory if it exists and tuna wrote it (it holds tuna's .tuna-run
    /// marker, or a config.json of an earlier tuna run); any other folder is left alone.
    #[arg(long)]
    pub overwrite: bool,
    /// Prompt format: chat (the model's template; the default when it has one) or alpaca.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Share of the data held out for evaluation.
    #[arg(long, default_value_t = 0.1)]
    pub held_out: f64,
    /// Longest prompt + response in tokens.
    #[arg(long, default_value_t = 512)]
    pub max_len: usize,
    /// Seed of the split, initialisation, batch order, dropout and sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub train: FinetuneArgs,
}

impl StageArgs {
    /// `--limit` records drawn with `--seed`, in file order (all of them without a limit).
    pub fn limited<T>(&self, v: Vec<T>) -> Vec<T> {
        if self.limit == 0 || self.limit >= v.len() {
            return v;
        }
        let keep = tuna_data::seeded_subset(v.len(), self.limit, self.seed);
        let mut keep = keep.into_iter().peekable();
        v.into_iter()
            .enumerate()
            .filter(|(i, _)| keep.next_if_eq(i).is_some())
            .map(|(_, x)| x)
            .collect()
    }

    /// Method and training settings for `kind`.
    pub fn config(&self, kind: MethodName) -> FinetuneConfig {
        let mut cfg = self
            .train
            .config(kind, Pooling::Last, self.max_len, self.seed);
        cfg.train.micro_batch = self.train.micro_batch.unwrap_or(STAGE_MICRO_BATCH);
        cfg
    }

    /// Loads the model and creates (or with --resume reopens) the run directory.
    pub fn start(&self) -> Result<RlhfRun> {
        RlhfRun::start(&self.model, &self.out, self.overwrite, self.train.resume)
    }

    /// The prompt format for `tok`.
    pub fn format(&self, tok: &TextTokenizer) -> FormatKind {
        FormatArg::resolve(self.format, tok)
    }
}

/// Prompt formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// The model's chat template.
    Chat,
    /// The Alpaca instruction format.
    Alpaca,
}

impl FormatArg {
    /// The chosen format, or the model's default.
    pub fn resolve(arg: Option<FormatArg>, tok: &TextTokenizer) -> FormatKind {
        match arg {
            Some(FormatArg::Chat) => FormatKind::Chat,
            Some(FormatArg::Alpaca) => FormatKind::Alpaca,
            None => FormatKind::default_for(tok),
        }
    }
}

/// `full` or `lora` for a language model.
pub fn lm_method(name: &str) -> Result<MethodName> {
    Ok(match name {
        "full" => MethodName::Full,
        "lora" => MethodName::Lora,
        other => bail!("--method {other}: use full or lora"),
    })
}

/// A run directory being written, with the model it starts from.
pub struct RlhfRun {
    writer: RunWriter,
    pub model: Model,
    source: PathBuf,
    fingerprint: String,
}

impl RlhfRun {
    /// Loads the model and creates (or, resuming, reopens) the run directory.
    pub fn start(model: &ModelArgs, out: &Path, overwrite: bool, resume: bool) -> Result<Self> {
        let (m, fingerprint) = model.load()?;
        let source =
            std::fs::canonicalize(&m.info.source).unwrap_or_else(|_| m.info.source.clone());
        let writer = if resume {
            RunWriter::reopen(out, overwrite)?
        } else {
            RunWriter::create(out, overwrite)?
        };
        Ok(Self {
            writer,
            model: m,
            source,
            fingerprint,
        })
    }

    /// Hands the model over, keeping the run.
    pub fn take_model(self) -> (RunDir, Model) {
        (
            RunDir {
                writer: self.writer,
                source: self.source,
                fingerprint: self.fingerprint,
            },
            self.model,
        )
    }
}

/// The run directory once the model is handed over.
pub struct RunDir {
    writer: RunWriter,
    source: PathBuf,
    fingerprint: String,
}

impl RunDir {
    /// Where files are written until the run is finished.
    pub fn dir(&self) -> PathBuf {
        self.writer.path("")
    }

    /// Writes config.json and metrics.json and moves the run into place.
    pub fn finish<C: Serialize, R: Serialize>(
        self,
        stage: &str,
        data: &Path,
        settings: &C,
        report: &R,
    ) -> Result<PathBuf> {
        let data = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
        let from_run = relative_to_run(&self.source, self.writer.dir());
        self.writer.json(
            "config.json",
            &json!({
                "tuna_version": env!("CARGO_PKG_VERSION"), "stage": stage,
                "model": self.source, "model_from_run": from_run,
                "model_fingerprint": self.fingerprint,
                "data": data, "settings": settings,
            }),
        )?;
        self.writer.json(
            "metrics.json",
            &json!({"report": report, "peak_rss_bytes": peak_rss_bytes()}),
        )?;
        Ok(self.writer.commit()?)
    }
}
