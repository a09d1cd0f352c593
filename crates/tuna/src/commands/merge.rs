//! `tuna merge`: fold a LoRA run into its base model and write a plain checkpoint.

use crate::output::Output;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tuna_train::finetune::merge::merge_run;

#[derive(Args)]
pub struct MergeCmd {
    /// A finished `tuna train --method lora` run directory.
    #[arg(long)]
    run: PathBuf,
    /// Folder for the merged checkpoint (config.json, model.safetensors, tokenizer.json).
    #[arg(long, short)]
    out: PathBuf,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl MergeCmd {
    pub fn run(self, out: &Output) -> anyhow::Result<()> {
        let device = tuna_core::pick_device(&self.device)?;
        let r = merge_run(&self.run, &self.out, &device)?;
        out.line(format!(
            "merged checkpoint ({} tensors) written to {}; its hidden states differ from the LoRA run's by at most {:.2e}",
            r.tensors,
            self.out.display(),
            r.max_difference
        ));
        out.result(json!({"ok": true, "command": "merge", "out": self.out, "max_difference": r.max_difference, "tensors": r.tensors}));
        Ok::<(), anyhow::Error>(())
    }
}
