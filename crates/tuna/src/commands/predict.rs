//! `tuna predict`: label new texts with a finished run.

use crate::args::ReadArgs;
use crate::output::Output;
use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tuna_train::predict::Predictor;

#[derive(Args)]
pub struct PredictCmd {
    /// Run directory written by `tuna train`.
    #[arg(long)]
    run: PathBuf,
    /// Texts to label.
    texts: Vec<String>,
    /// File of texts to label (instead of, or besides, texts on the command line).
    #[arg(long, short)]
    input: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
    /// Use this model instead of the one the run records (which is looked for from the run
    /// directory, not the current folder; the model used is printed).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl PredictCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let mut texts = self.texts.clone();
        if let Some(path) = &self.input {
            texts.extend(
                self.read
                    .read_texts(path, out)?
                    .examples
                    .into_iter()
                    .map(|e| e.text),
            );
        }
        if texts.is_empty() {
            bail!("nothing to predict: give texts as arguments or --input FILE");
        }
        let device = tuna_core::pick_device(&self.device)?;
        let p = Predictor::load(&self.run, self.model.as_deref(), &device)?;
        out.note(format!(
            "model: {} ({})",
            p.model.path.display(),
            p.model.how
        ));
        let preds = p.predict(&texts, &out.bar())?;
        for (t, pr) in texts.iter().zip(&preds) {
            out.line(format!("{}\t{:.3}\t{}", pr.label, pr.confidence, t));
        }
        out.result(json!({
            "ok": true, "command": "predict", "model": p.model.path, "labels": p.labels.labels(),
            "predictions": preds.iter().map(|p| json!({"label": p.label, "confidence": p.confidence})).collect::<Vec<_>>(),
        }));
        Ok(())
    }
}
