//! `tuna merge`: fold a trained adapter into its base model and write a plain model: a
//! classification run (LoRA, DoRA, IA3) as a Hugging Face checkpoint, or a causal LM's adapter
//! (`tuna sft`, `dpo`, `ppo`, or a PEFT folder) as a complete GGUF model (`--gguf`).

use super::merge_gguf::merge_to_gguf;
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tuna_train::finetune::merge::merge_run;

#[derive(Args)]
pub struct MergeCmd {
    /// A finished `tuna train --method lora|dora|ia3` run directory (written as a Hugging Face
    /// checkpoint with -o).
    #[arg(long, required_unless_present = "adapter", conflicts_with = "adapter")]
    run: Option<PathBuf>,
    /// Folder for the merged checkpoint of --run (config.json, model.safetensors,
    /// tokenizer.json).
    #[arg(long, short, required_unless_present = "gguf", conflicts_with = "gguf")]
    out: Option<PathBuf>,
    /// A causal LM's adapter to merge (with --gguf): a PEFT adapter directory (LoRA, DoRA, IA3)
    /// or a run that keeps one in `adapter/` (tuna sft, dpo, ppo).
    #[arg(long, requires = "gguf")]
    adapter: Option<PathBuf>,
    /// The GGUF base model the adapter was trained on; by default the one the adapter's config
    /// names.
    #[arg(long, short, requires = "adapter")]
    model: Option<PathBuf>,
    /// Write the merged model as one GGUF file here, with the base GGUF's metadata (llama.cpp,
    /// Ollama, transformers' `gguf_file=` load it).
    #[arg(long, requires = "adapter")]
    gguf: Option<PathBuf>,
    /// Stored type of the blocks' weights in the GGUF: f32, f16, bf16, q8_0, q4_0, q4_1, q4_k,
    /// q5_k or q6_k. Norms stay f32; the embedding is q8_0 for the 4- to 6-bit types; rows that
    /// are not whole blocks of a k-type fall back to q4_1 (q4_k) or q8_0.
    #[arg(long = "type", default_value = "q8_0", requires = "gguf")]
    ty: String,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl MergeCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let device = tuna_core::pick_device(&self.device)?;
        if let (Some(adapter), Some(gguf)) = (&self.adapter, &self.gguf) {
            return merge_to_gguf(adapter, self.model.as_deref(), gguf, &self.ty, &device, out);
        }
        let (Some(run), Some(dir)) = (&self.run, &self.out) else {
            anyhow::bail!("give --run RUN -o DIR, or --adapter ADAPTER --gguf FILE");
        };
        let r = merge_run(run, dir, &device)?;
        out.line(format!(
            "merged checkpoint ({} tensors) written to {}; its hidden states differ from the LoRA run's by at most {:.2e}",
            r.tensors,
            dir.display(),
            r.max_difference
        ));
        out.result(json!({"ok": true, "command": "merge", "out": dir, "max_difference": r.max_difference, "tensors": r.tensors}));
        Ok(())
    }
}
