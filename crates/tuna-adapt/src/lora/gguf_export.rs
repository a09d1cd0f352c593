//! A LoRA adapter (PEFT's layout, as tuna writes and reads it) as a GGUF adapter file, the
//! layout llama.cpp and its family load with `--lora`: metadata `general.type = adapter`,
//! `adapter.type = lora`, `adapter.lora.alpha`, and per target `<gguf name>.lora_a` (r x in)
//! and `<gguf name>.lora_b` (out x r) under llama.cpp's tensor names. For the `llama`
//! architecture llama.cpp stores Q and K rows permuted for its rotary layout, so the `B` of
//! `q_proj` and `k_proj` is permuted the same way (A is untouched: the permutation acts on
//! output rows only).

use super::LoraConfig;
use crate::peft;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;
use tuna_core::{Error, Result};
use tuna_models::gguf::{gguf_key, permute, LlamaCppLayout};
use tuna_models::gguf_write::write_gguf_file;

/// What [`export_lora_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct GgufExport {
    /// Adapted layers (each has an `A` and a `B` tensor).
    pub layers: usize,
    pub r: usize,
    pub alpha: f64,
}

/// Writes the LoRA adapter in `adapter` (a PEFT directory) as a GGUF adapter file at `out`
/// (written beside it and renamed into place, so a reader never sees half a file).
pub fn export_lora_gguf(adapter: &Path, base: &LlamaCppLayout, out: &Path) -> Result<GgufExport> {
    let cfg_path = adapter.join(peft::CONFIG);
    let cfg = peft::read_config(adapter)?;
    let kind = cfg.get("peft_type").and_then(|v| v.as_str()).unwrap_or("");
    if kind != "LORA" || cfg.get("use_dora").and_then(|v| v.as_bool()) == Some(true) {
        let what = if kind == "LORA" { "DORA" } else { kind };
        return Err(Error::bad_file(
            &cfg_path,
            format!(
                "a `{what}` adapter: llama.cpp loads LoRA adapters only; merge it into the base \
                 instead (`tuna merge`)"
            ),
        ));
    }
    let lora = LoraConfig::from_peft(&cfg, &cfg_path)?;
    let weights = adapter.join(peft::WEIGHTS);
    let tensors = peft::read_tensors(&weights, &Device::Cpu)?;
    let mut modules: Vec<&str> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(".lora_A.weight"))
        .collect();
    modules.sort();
    if modules.is_empty() {
        return Err(Error::bad_file(
            &weights,
            "no LoRA tensors (`*.lora_A.weight`) in it",
        ));
    }
    let mut out_tensors = Vec::with_capacity(2 * modules.len());
    for module in &modules {
        let (a, b) = module_pair(&tensors, module, base, &weights)?;
        let name = gguf_key(&format!("{module}.weight")).ok_or_else(|| {
            Error::bad_file(&weights, format!("`{module}` has no llama.cpp tensor name"))
        })?;
        out_tensors.push((
            format!("{name}.lora_a"),
            QTensor::quantize(&a, GgmlDType::F32)?,
        ));
        out_tensors.push((
            format!("{name}.lora_b"),
            QTensor::quantize(&b, GgmlDType::F32)?,
        ));
    }
    write_gguf(out, base, lora.alpha, &out_tensors)?;
    Ok(GgufExport {
        layers: modules.len(),
        r: lora.r,
        alpha: lora.alpha,
    })
}

/// `A` and `B` of one module, `B` permuted as llama.cpp stores the module's weight.
fn module_pair(
    tensors: &std::collections::HashMap<String, Tensor>,
    module: &str,
    base: &LlamaCppLayout,
    weights: &Path,
) -> Result<(Tensor, Tensor)> {
    let get = |suffix: &str| {
        tensors
            .get(&format!("{module}.{suffix}"))
            .cloned()
            .ok_or_else(|| Error::bad_file(weights, format!("`{module}.{suffix}` missing")))
    };
    let (a, mut b) = (get("lora_A.weight")?, get("lora_B.weight")?);
    let (r_a, r_b) = (a.dims()[0], b.dims().get(1).copied().unwrap_or(0));
    if a.rank() != 2 || b.rank() != 2 || r_a != r_b {
        return Err(Error::bad_file(
            weights,
            format!(
                "`{module}`: A {:?} and B {:?} do not make a rank-r pair",
                a.dims(),
                b.dims()
            ),
        ));
    }
    if base.arch == "llama" {
        if module.ends_with("self_attn.q_proj") {
            b = permute(&b, base.heads)?;
        } else if module.ends_with("self_attn.k_proj") {
            b = permute(&b, base.kv_heads)?;
        }
    }
    Ok((
        a.to_dtype(candle_core::DType::F32)?,
        b.to_dtype(candle_core::DType::F32)?,
    ))
}

fn write_gguf(
    out: &Path,
    base: &LlamaCppLayout,
    alpha: f64,
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let meta = vec![
        (
            "general.architecture".into(),
            Value::String(base.arch.clone()),
        ),
        ("general.type".into(), Value::String("adapter".into())),
        ("adapter.type".into(), Value::String("lora".into())),
        ("adapter.lora.alpha".into(), Value::F32(alpha as f32)),
    ];
    write_gguf_file(out, &meta, tensors)
}
