//! `tuna export`: a trained adapter in another runtime's format (today: a LoRA adapter as a
//! GGUF adapter file for llama.cpp and the runtimes built on it).

use crate::output::Output;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use tuna_adapt::lora::gguf_export::export_lora_gguf;
use tuna_adapt::peft;
use tuna_models::gguf::llama_cpp_layout;

#[derive(Args)]
pub struct ExportCmd {
    /// The adapter: a PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
    /// or a tuna run directory holding one in `adapter/` (train --method lora, sft, dpo).
    #[arg(long)]
    adapter: PathBuf,
    /// The base model the adapter was trained on (a .gguf file or a Hugging Face directory);
    /// by default the one the adapter's config names.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Write the adapter as a GGUF adapter file here (llama.cpp: `--lora FILE`).
    #[arg(long)]
    gguf: PathBuf,
}

impl ExportCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let adapter = tuna_serve::adapter_dir(&self.adapter)?;
        let base = match &self.model {
            Some(m) => m.clone(),
            None => recorded_base(&adapter)?,
        };
        let layout = llama_cpp_layout(&base)
            .with_context(|| format!("reading the base model {}", base.display()))?;
        let r = export_lora_gguf(&adapter, &layout, &self.gguf)?;
        out.line(format!(
            "GGUF adapter ({} layers, r {}, alpha {}) for {} ({}) written to {}",
            r.layers,
            r.r,
            r.alpha,
            base.display(),
            layout.arch,
            self.gguf.display()
        ));
        out.result(
            json!({"ok": true, "command": "export", "out": self.gguf, "format": "gguf",
            "layers": r.layers, "r": r.r, "alpha": r.alpha, "base": base}),
        );
        Ok(())
    }
}

/// The base model the adapter's config names, looked up from the adapter's folder when relative.
pub(crate) fn recorded_base(adapter: &Path) -> Result<PathBuf> {
    let cfg = peft::read_config(adapter)?;
    let named = cfg
        .get("base_model_name_or_path")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let named = Path::new(named);
    for candidate in [adapter.join(named), named.to_path_buf()] {
        if !named.as_os_str().is_empty() && candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "the adapter's config names base model `{}`, which is not found from here or from {}: \
         give it with --model",
        named.display(),
        adapter.display()
    )
}
