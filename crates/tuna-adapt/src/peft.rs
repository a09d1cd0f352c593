//! Adapter files in PEFT's layout: `adapter_config.json` + `adapter_model.safetensors` with
//! PEFT's key names (`base_model.model.<module>.lora_A.weight`, `prompt_embeddings`, ...), so
//! PEFT loads tuna's adapters and tuna loads PEFT's. Each method folder writes and reads its
//! own config fields; this file holds what they share.

use candle_core::{Device, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use tuna_core::{fsutil, Error, Result};
use tuna_models::{Family, Model};

/// PEFT's prefix of every tensor name in an adapter file.
pub const PREFIX: &str = "base_model.model.";
pub const CONFIG: &str = "adapter_config.json";
pub const WEIGHTS: &str = "adapter_model.safetensors";

/// Facts about the network that adapter configs record.
#[derive(Debug, Clone, Copy)]
pub struct NetShape {
    pub family: Family,
    pub hidden: usize,
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl NetShape {
    pub fn of(model: &Model) -> Self {
        let (kv_heads, head_dim) = model.network.kv_shape();
        Self {
            family: model.info.family,
            hidden: model.info.hidden_size,
            layers: model.network.num_blocks(),
            kv_heads,
            head_dim,
        }
    }
}

/// Reads `dir/adapter_config.json`.
pub fn read_config(dir: &Path) -> Result<Value> {
    fsutil::read_json(&dir.join(CONFIG))
}

/// A required field of an adapter config, or an error naming the file.
pub fn field<'a>(cfg: &'a Value, name: &str, path: &Path) -> Result<&'a Value> {
    cfg.get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| Error::bad_file(path, format!("{name} missing")))
}

/// A required whole-number field.
pub fn usize_field(cfg: &Value, name: &str, path: &Path) -> Result<usize> {
    field(cfg, name, path)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| Error::bad_file(path, format!("{name} is not a whole number")))
}

/// Writes an adapter directory: the method's `specific` config fields over the common ones,
/// and the tensors under PEFT's names.
pub fn write_adapter(
    dir: &Path,
    specific: Value,
    tensors: &[(String, Tensor)],
    shape: &NetShape,
    base_model: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut cfg = json!({
        "base_model_name_or_path": base_model,
        "inference_mode": true,
        "revision": null,
        "task_type": null,
        "tuna_family": format!("{:?}", shape.family).to_lowercase(),
    });
    if let (Some(c), Some(s)) = (cfg.as_object_mut(), specific.as_object()) {
        c.extend(s.clone());
    }
    fsutil::write_json(&dir.join(CONFIG), &cfg)?;
    let named: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| {
            let key = if n.starts_with("prompt_") {
                n.clone()
            } else {
                format!("{PREFIX}{n}")
            };
            (key, t.detach())
        })
        .collect();
    save_tensors(&named, &dir.join(WEIGHTS))
}

/// Writes named tensors as safetensors, atomically.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp)
        .map_err(|e| Error::bad_file(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Reads named tensors, with PEFT's `base_model.model.` prefix removed.
pub fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let raw = candle_core::safetensors::load(path, device)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k.strip_prefix(PREFIX).unwrap_or(&k).to_string(), v))
        .collect())
}
