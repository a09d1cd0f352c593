//! Adapter files in PEFT's layout: `adapter_config.json` + `adapter_model.safetensors` with
//! PEFT's key names (`base_model.model.<module>.lora_A.weight`, `prompt_embeddings`), so PEFT
//! loads tuna's adapters and tuna loads PEFT's. Bottleneck adapters use the same layout with
//! their own `peft_type`.

use super::config::{LoraSettings, MethodConfig, MethodKind};
use super::task_model::TaskModel;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use tuna_core::fsutil;

const PREFIX: &str = "base_model.model.";
pub const CONFIG: &str = "adapter_config.json";
pub const WEIGHTS: &str = "adapter_model.safetensors";

/// The fields of `adapter_config.json` tuna reads.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    #[serde(default)]
    pub r: Option<usize>,
    #[serde(default)]
    pub lora_alpha: Option<f64>,
    #[serde(default)]
    pub lora_dropout: Option<f32>,
    /// A list of module names or one regular expression.
    #[serde(default)]
    pub target_modules: Option<Value>,
    #[serde(default)]
    pub num_virtual_tokens: Option<usize>,
    #[serde(default)]
    pub adapter_size: Option<usize>,
    #[serde(default)]
    pub use_dora: Option<bool>,
    #[serde(default)]
    pub use_rslora: Option<bool>,
}

impl AdapterConfig {
    /// Reads `dir/adapter_config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(fsutil::read_json(&dir.join(CONFIG))?)
    }

    /// The method this adapter belongs to, on top of `base` (pooling, head settings).
    pub fn method(&self, base: &MethodConfig, path: &Path) -> Result<MethodConfig> {
        let bad = |m: String| -> Error { tuna_core::Error::bad_file(path, m).into() };
        let mut m = base.clone();
        match self.peft_type.as_str() {
            "LORA" => {
                if self.use_dora == Some(true) || self.use_rslora == Some(true) {
                    return Err(bad("DoRA / rsLoRA adapters are not supported".into()));
                }
                m.kind = MethodKind::Lora;
                let (targets, target_regex) = match &self.target_modules {
                    Some(Value::String(r)) => (vec![], Some(r.clone())),
                    Some(Value::Array(a)) => (
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect(),
                        None,
                    ),
                    _ => (vec![], None),
                };
                m.lora = LoraSettings {
                    r: self.r.ok_or_else(|| bad("LoRA config without r".into()))?,
                    alpha: self.lora_alpha.unwrap_or(8.0),
                    dropout: self.lora_dropout.unwrap_or(0.0),
                    targets,
                    target_regex,
                };
            }
            "PROMPT_TUNING" | "PREFIX_TUNING" => {
                m.kind = if self.peft_type == "PROMPT_TUNING" {
                    MethodKind::Prompt
                } else {
                    MethodKind::Prefix
                };
                m.virtual_tokens = self
                    .num_virtual_tokens
                    .ok_or_else(|| bad("num_virtual_tokens missing".into()))?;
            }
            "BOTTLENECK" => {
                m.kind = MethodKind::Adapter;
                m.adapter_size = self
                    .adapter_size
                    .ok_or_else(|| bad("adapter_size missing".into()))?;
            }
            other => return Err(bad(format!("adapter type {other} is not supported"))),
        }
        Ok(m)
    }
}

/// Writes the method's adapter (LoRA, prefix, prompt, bottleneck) into `dir` in PEFT's layout.
/// For prefix tuning the MLP must already be folded into its table.
pub fn save_adapter(tm: &mut TaskModel, dir: &Path, base_model: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| tuna_core::Error::io(dir, e))?;
    let m = tm.method.clone();
    let (kind, family) = (m.kind, tm.model.info.family);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut modules: Vec<String> = vec![];
    tm.model.network.visit(&mut |name, t| {
        let keep = match kind {
            MethodKind::Lora => name.contains(".lora_A.") || name.contains(".lora_B."),
            MethodKind::Adapter => {
                name.contains(".adapter_attn.") || name.contains(".adapter_ffn.")
            }
            _ => false,
        };
        if keep {
            tensors.insert(format!("{PREFIX}{name}"), t.detach());
            if let Some(module) = name.strip_suffix(".lora_A.weight") {
                modules.push(module.rsplit('.').next().unwrap_or(module).to_string());
            }
        }
        Ok(())
    })?;
    if let Some(p) = &tm.prompt {
        tensors.insert("prompt_embeddings".into(), p.detach());
    }
    if let Some(p) = &tm.prefix {
        tensors.insert("prompt_embeddings".into(), p.table()?.detach());
    }
    modules.sort();
    modules.dedup();
    let (kv_heads, head_dim) = tm.model.network.kv_shape();
    let common = json!({
        "base_model_name_or_path": base_model,
        "inference_mode": true,
        "revision": null,
        "task_type": null,
        "tuna_family": format!("{family:?}").to_lowercase(),
    });
    let specific = match kind {
        MethodKind::Lora => json!({
            "peft_type": "LORA", "r": m.lora.r, "lora_alpha": m.lora.alpha,
            "lora_dropout": m.lora.dropout,
            "target_modules": match &m.lora.target_regex { Some(r) => json!(r), None => json!(modules) },
            "bias": "none", "fan_in_fan_out": false, "init_lora_weights": true,
            "modules_to_save": null, "use_dora": false, "use_rslora": false,
            "layers_to_transform": null, "layers_pattern": null,
        }),
        MethodKind::Prompt | MethodKind::Prefix => json!({
            "peft_type": if kind == MethodKind::Prompt { "PROMPT_TUNING" } else { "PREFIX_TUNING" },
            "num_virtual_tokens": m.virtual_tokens,
            "token_dim": if kind == MethodKind::Prompt { tm.model.info.hidden_size } else { kv_heads * head_dim },
            "num_transformer_submodules": 1,
            "num_attention_heads": kv_heads,
            "num_layers": tm.model.network.num_blocks(),
            // The reparameterisation MLP is dropped at save: the table is the adapter.
            "prefix_projection": false,
            "encoder_hidden_size": m.prefix_hidden,
            "prompt_tuning_init": if m.prompt_init.is_some() { "TEXT" } else { "RANDOM" },
            "prompt_tuning_init_text": m.prompt_init,
        }),
        MethodKind::Adapter => json!({
            "peft_type": "BOTTLENECK", "adapter_size": m.adapter_size, "non_linearity": "relu",
            "placement": ["after attention output", "after feed-forward output"],
            "residual": true, "init": "up projection zero (identity)",
        }),
        MethodKind::Head | MethodKind::Full => {
            return Err(Error::Invalid(format!(
                "method {} has no adapter file",
                kind.name()
            )))
        }
    };
    let mut cfg = common;
    if let (Some(c), Some(s)) = (cfg.as_object_mut(), specific.as_object()) {
        c.extend(s.clone());
    }
    fsutil::write_json(&dir.join(CONFIG), &cfg)?;
    save_tensors(&tensors, &dir.join(WEIGHTS))
}

/// Writes named tensors as safetensors, atomically.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp)
        .map_err(|e| tuna_core::Error::bad_file(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| tuna_core::Error::io(path, e))?;
    Ok(())
}

/// Reads named tensors, with PEFT's `base_model.model.` prefix removed.
pub fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let raw = candle_core::safetensors::load(path, device)
        .map_err(|e| tuna_core::Error::bad_file(path, e.to_string()))?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k.strip_prefix(PREFIX).unwrap_or(&k).to_string(), v))
        .collect())
}

/// Replaces the model's tensors by the named ones (shapes must match); every name must be used.
pub fn load_into(
    tm: &mut TaskModel,
    mut tensors: HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    // Prefix tuning's table replaces the training-time MLP.
    if tm.prefix.is_some() {
        if let Some(t) = tensors.remove("prompt_embeddings") {
            tm.prefix = Some(super::prefix::PrefixEncoder::Table(t));
        }
    }
    let mut bad = None;
    tm.visit(&mut |name, t| {
        if let Some(v) = tensors.remove(name) {
            if v.dims() != t.dims() {
                bad = Some(format!(
                    "{name}: shape {:?} in the file, {:?} in the model",
                    v.dims(),
                    t.dims()
                ));
            }
            *t = v;
        }
        Ok(())
    })?;
    if let Some(b) = bad {
        return Err(tuna_core::Error::bad_file(path, b).into());
    }
    if !tensors.is_empty() {
        let mut left: Vec<_> = tensors.keys().cloned().collect();
        left.sort();
        left.truncate(5);
        return Err(tuna_core::Error::bad_file(
            path,
            format!(
                "tensors that match nothing in the model: {}",
                left.join(", ")
            ),
        )
        .into());
    }
    Ok(())
}
