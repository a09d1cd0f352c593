//! What the RLHF verbs (`sft`, `reward`, `dpo`, `ppo`) share: the run directory with its
//! config and metrics, the method and prompt-format arguments.

use crate::args::ModelArgs;
use anyhow::{bail, Result};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use tuna_models::{Model, TextTokenizer};
use tuna_rlhf::FormatKind;
use tuna_train::finetune::{peak_rss_bytes, MethodKind};
use tuna_train::run::RunWriter;

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
pub fn lm_method(name: &str) -> Result<MethodKind> {
    Ok(match name {
        "full" => MethodKind::Full,
        "lora" => MethodKind::Lora,
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
            RunWriter::reopen(out)?
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
        self.writer.json(
            "config.json",
            &json!({
                "tuna_version": env!("CARGO_PKG_VERSION"), "stage": stage,
                "model": self.source, "model_fingerprint": self.fingerprint,
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
