//! Folding a run whose method changes weights (LoRA, DoRA, IA3) into its base model, written
//! as a plain Hugging Face checkpoint (config, safetensors, tokenizer) that any loader
//! reads without PEFT. The run's classification head and labels are copied beside it.

use super::weights_file::write_weights;
use super::{load_finetuned, HEAD_FILE};
use crate::run::read_run_config;
use crate::{Error, Result};
use candle_core::Device;
use std::path::Path;
use tuna_data::LabelMap;
use tuna_models::{load_model, Model, Network};

/// Largest difference between the merged checkpoint's hidden states and the run's, on a probe.
pub struct MergeReport {
    pub max_difference: f32,
    pub tensors: usize,
}

/// Merges the run in `run` into a checkpoint in `out`.
pub fn merge_run(run: &Path, out: &Path, device: &Device) -> Result<MergeReport> {
    let cfg = read_run_config(run)?;
    let ft = cfg
        .finetune
        .as_ref()
        .ok_or_else(|| Error::Invalid(format!("{} is not a finetuning run", run.display())))?;
    if !ft.method.mergeable() {
        return Err(Error::Invalid(format!(
            "{} is a `{}` run: only {} runs fold into the base weights",
            run.display(),
            ft.method.label(),
            tuna_adapt::MethodName::mergeable_list()
        )));
    }
    let labels = LabelMap::load(&run.join("labels.json"))?;
    let model = cfg.find_model(run, None)?;
    tracing::info!(model = %model.path.display(), how = %model.how, "base model");
    let mut tm = load_finetuned(run, ft, labels.len(), &model.path, device)?;
    let probe: Vec<u32> = tm
        .model
        .encode("tuna merges LoRA into the base weights.", 32)?;
    let batch = tuna_models::tokenizer::pad_batch(&[probe], tm.model.tokenizer.pad_id, device)?;
    let before = tm.model.hidden_states(&batch)?;
    tm.model.network.merge_deltas()?;
    let n = write_checkpoint(&mut tm.model, out)?;
    for f in [HEAD_FILE, "labels.json"] {
        std::fs::copy(run.join(f), out.join(f))
            .map_err(|e| tuna_core::Error::io(out.join(f), e))?;
    }
    let merged = load_model(out, device)?;
    let after = merged.hidden_states(&batch)?;
    let max_difference = (before - after)?.abs()?.max_all()?.to_scalar::<f32>()?;
    Ok(MergeReport {
        max_difference,
        tensors: n,
    })
}

/// Writes `model` as a plain Hugging Face checkpoint in `out`: every tensor in f32 (LoRA must be
/// merged first) in `model.safetensors`, and the source's `config.json` and tokenizer files, or
/// for a GGUF source a synthesised `config.json`, `tokenizer.json` and `tokenizer_config.json`
/// (special tokens and chat template). Returns the number of tensors.
pub fn write_checkpoint(model: &mut Model, out: &Path) -> Result<usize> {
    std::fs::create_dir_all(out).map_err(|e| tuna_core::Error::io(out, e))?;
    let n = write_weights(model, &out.join("model.safetensors"))?;
    let src = &model.info.source;
    if src.is_dir() {
        for f in [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
        ] {
            if src.join(f).exists() {
                std::fs::copy(src.join(f), out.join(f))
                    .map_err(|e| tuna_core::Error::io(out.join(f), e))?;
            }
        }
    } else if let Network::Llama(l) = &model.network {
        let mut c = serde_json::to_value(l.config()).map_err(|e| Error::Invalid(e.to_string()))?;
        c["model_type"] = "llama".into();
        c["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        c["tie_word_embeddings"] = l.tied().into();
        c["torch_dtype"] = "float32".into();
        tuna_core::fsutil::write_json(&out.join("config.json"), &c)?;
        let tok = &model.tokenizer;
        let path = out.join("tokenizer.json");
        tok.inner()
            .save(&path, false)
            .map_err(|e| tuna_core::Error::bad_file(&path, e.to_string()))?;
        let name = |id: Option<u32>| id.and_then(|i| tok.decode(&[i], false).ok());
        let mut tc = serde_json::json!({
            "add_bos_token": tok.add_bos,
            "tokenizer_class": "PreTrainedTokenizerFast",
        });
        if let Some(b) = name(tok.bos_id) {
            tc["bos_token"] = b.into();
        }
        if let Some(e) = name(tok.eos_id) {
            tc["eos_token"] = e.into();
        }
        if let Some(p) = name(Some(tok.pad_id)) {
            tc["pad_token"] = p.into();
        }
        if let Some(t) = &tok.chat_template {
            tc["chat_template"] = t.clone().into();
        }
        tuna_core::fsutil::write_json(&out.join("tokenizer_config.json"), &tc)?;
    }
    Ok(n)
}
