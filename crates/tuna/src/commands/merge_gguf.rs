//! `tuna merge --adapter A --gguf OUT.gguf`: a causal LM's adapter folded into its GGUF base,
//! written as a complete GGUF model. The base is loaded in f32, the adapter attached and its
//! deltas merged, and the model written in the chosen type with the base file's metadata; the
//! written file is then loaded back (in its stored types, as tuna runs it by default) and its
//! logits on a probe compared with the unmerged adapter's.

use super::export::recorded_base;
use crate::output::Output;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde_json::json;
use std::path::Path;
use tuna_models::gguf_write::{parse_type, read_metadata, write_llama_gguf};
use tuna_models::registry::set_stored_as_f32;
use tuna_models::{load_model, Model};

/// The text whose logits the merged model must reproduce.
const PROBE: &str = "tuna merges the adapter into the base weights and writes one GGUF file.";

/// Merges the adapter at `adapter` into `model` (or the base its config names) and writes the
/// result to `gguf` with its blocks in `ty`.
pub fn merge_to_gguf(
    adapter: &Path,
    model: Option<&Path>,
    gguf: &Path,
    ty: &str,
    device: &Device,
    out: &Output,
) -> Result<()> {
    let ty = parse_type(ty).context("--type")?;
    let dir = tuna_serve::adapter_dir(adapter)?;
    let base = match model {
        Some(m) => m.to_path_buf(),
        None => recorded_base(&dir)?,
    };
    if !base.is_file() {
        bail!(
            "the base model {} is a Hugging Face directory: `tuna merge --gguf` copies the \
             llama.cpp metadata (hyperparameters, tokenizer) of a GGUF base and does not \
             synthesise it. A `tuna sft`/`dpo` run already holds the merged model in RUN/model \
             (Hugging Face format): convert that with llama.cpp's convert_hf_to_gguf.py, or \
             train on the model's GGUF file",
            base.display()
        );
    }
    let meta = read_metadata(&base)?;
    set_stored_as_f32(true);
    let loaded = load_model(&base, device)
        .with_context(|| format!("loading the base {}", base.display()))?;
    let adapted = tuna_serve::with_lm_adapter(loaded, adapter)
        .with_context(|| format!("--adapter {}", adapter.display()))?;
    if adapted.virt.is_some() {
        bail!(
            "--adapter {}: prefix and prompt tuning add virtual tokens rather than change \
             weights, so they cannot be merged into a model file; serve them unmerged (tuna \
             serve --adapter, tuna generate --adapter)",
            adapter.display()
        );
    }
    let mut merged = adapted.model;
    let probe = merged.encode(PROBE, 64)?;
    let before = merged.logits(&probe)?;
    merged.network.merge_deltas()?;
    let written = write_llama_gguf(&mut merged, &meta, ty, gguf)?;
    drop(merged);
    set_stored_as_f32(false);
    let back: Model = load_model(gguf, device)
        .with_context(|| format!("loading the merged model {} back", gguf.display()))?;
    let after = back.logits(&probe)?;
    let diff = (&before - &after)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let scale = before.abs()?.max_all()?.to_scalar::<f32>()?;
    let types: Vec<String> = written
        .by_type
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    out.line(format!(
        "merged GGUF model ({} tensors: {}) written to {}; loaded back, its logits differ from \
         the unmerged adapter's by at most {diff:.2e} (largest logit {scale:.1})",
        written.tensors,
        types.join(", "),
        gguf.display()
    ));
    out.result(
        json!({"ok": true, "command": "merge", "format": "gguf", "out": gguf,
        "base": base, "tensors": written.tensors, "types": written.by_type,
        "max_logit_difference": diff, "max_logit": scale}),
    );
    Ok(())
}
