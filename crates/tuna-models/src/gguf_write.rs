//! Writing a Llama-family model as a complete GGUF model file, the way llama.cpp's converter
//! and `llama-quantize` lay one out: llama.cpp's tensor names, Q/K rows permuted back to its
//! rotary layout (architecture `llama`), the blocks' linear weights in a chosen stored type,
//! norms in F32, and the metadata (architecture, hyperparameters, tokenizer) of the GGUF the
//! model came from. The inverse of [`crate::gguf::load_gguf`].

use crate::gguf::{gguf_key, permute, LlamaCppLayout};
use crate::{Model, Network};
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tuna_core::{Error, Result};
use tuna_nn::quant::QuantType;

/// The stored types a merged model can be written in (`--type`), by llama.cpp's names.
pub const TYPE_NAMES: &str = "f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k";

/// The stored type named `name` (llama.cpp's spelling, any case).
pub fn parse_type(name: &str) -> Result<QuantType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "f32" => QuantType::F32,
        "f16" => QuantType::F16,
        "bf16" => QuantType::BF16,
        "q8_0" => QuantType::Q8_0,
        "q4_0" => QuantType::Q4_0,
        "q4_1" => QuantType::Q4_1,
        "q4_k" => QuantType::Q4K,
        "q5_k" => QuantType::Q5K,
        "q6_k" => QuantType::Q6K,
        other => {
            return Err(Error::Invalid(format!(
                "unknown GGUF type `{other}` (one of {TYPE_NAMES})"
            )))
        }
    })
}

/// llama.cpp's `general.file_type` (`LLAMA_FTYPE_*`) of a model whose blocks are `ty`.
fn file_type(ty: QuantType) -> u32 {
    match ty {
        QuantType::F32 => 0,
        QuantType::F16 => 1,
        QuantType::Q4_0 => 2,
        QuantType::Q4_1 => 3,
        QuantType::Q8_0 => 7,
        QuantType::Q4K => 14,
        QuantType::Q5K => 16,
        QuantType::Q6K => 18,
        QuantType::BF16 => 32,
    }
}

/// The type a weight with rows of `cols` values is stored in when `ty` is asked for: `ty` if
/// the rows are whole blocks of it, else a type whose blocks fit (as `llama-quantize` falls
/// back): Q4_K -> Q4_1, Q5_K and Q6_K -> Q8_0, and F16 for rows not a multiple of 32.
pub fn fitting_type(ty: QuantType, cols: usize) -> QuantType {
    if cols.is_multiple_of(ty.block()) {
        return ty;
    }
    let fallback = match ty {
        QuantType::Q4K => QuantType::Q4_1,
        _ => QuantType::Q8_0,
    };
    if cols.is_multiple_of(fallback.block()) {
        fallback
    } else {
        QuantType::F16
    }
}

/// The type of the token embedding and output layer for blocks in `ty`: the same for the float
/// types and Q8_0, Q8_0 for the 4- to 6-bit types (the vocabulary projection is the most
/// sensitive weight; SmolLM2's own Q4 files keep it in Q8_0).
fn embedding_type(ty: QuantType) -> QuantType {
    match ty {
        QuantType::F32 | QuantType::F16 | QuantType::BF16 | QuantType::Q8_0 => ty,
        _ => QuantType::Q8_0,
    }
}

/// What [`write_llama_gguf`] wrote: tensors per stored type (GGML's names).
#[derive(Debug, Clone, Default)]
pub struct GgufWritten {
    pub tensors: usize,
    pub by_type: BTreeMap<String, usize>,
}

/// The metadata of the GGUF file at `path` (to copy into a model derived from it).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, Value>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = Content::read(&mut f)
        .map_err(|e| Error::bad_file(path, format!("not a readable GGUF file: {e}")))?;
    Ok(content.metadata)
}

/// Writes `model` (a Llama-family causal LM with every weight delta merged and every weight in
/// f32) as a GGUF model at `out`, its blocks' linear weights in `ty`, with the metadata `base`
/// of the GGUF it was loaded from (`general.file_type` set to match; `general.alignment`
/// dropped: the writer aligns to 32 bytes). Written beside `out` and renamed into place.
pub fn write_llama_gguf(
    model: &mut Model,
    base: &HashMap<String, Value>,
    ty: QuantType,
    out: &Path,
) -> Result<GgufWritten> {
    let Network::Llama(llama) = &model.network else {
        return Err(Error::Invalid(
            "only Llama-family models are written as GGUF".into(),
        ));
    };
    let cfg = llama.config();
    let arch = match base.get("general.architecture").map(|v| v.to_string()) {
        Some(Ok(a)) => a.clone(),
        _ => return Err(Error::Invalid("the base GGUF names no architecture".into())),
    };
    let layout = LlamaCppLayout {
        arch,
        heads: cfg.num_attention_heads,
        kv_heads: cfg.kv_heads(),
    };
    let mut hf: Vec<(String, Tensor)> = Vec::new();
    model.network.visit(&mut |name, t| {
        hf.push((name.to_string(), t.detach()));
        Ok(())
    })?;
    hf.sort_by(|a, b| a.0.cmp(&b.0));
    let mut written = GgufWritten::default();
    let mut tensors = Vec::with_capacity(hf.len());
    for (name, t) in &hf {
        let (gguf, q) = encode_tensor(name, t, &layout, ty)?;
        *written
            .by_type
            .entry(format!("{:?}", q.dtype()))
            .or_default() += 1;
        tensors.push((gguf, q));
    }
    written.tensors = tensors.len();
    let mut meta: Vec<(String, Value)> = base
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "general.alignment" | "general.file_type"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.push(("general.file_type".into(), Value::U32(file_type(ty))));
    if !base.contains_key("general.quantization_version") {
        meta.push(("general.quantization_version".into(), Value::U32(2)));
    }
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    write_gguf_file(out, &meta, &tensors)?;
    Ok(written)
}

/// One tensor under its llama.cpp name, permuted and stored as llama.cpp keeps it.
fn encode_tensor(
    name: &str,
    t: &Tensor,
    layout: &LlamaCppLayout,
    ty: QuantType,
) -> Result<(String, QTensor)> {
    let gguf = gguf_key(name)
        .ok_or_else(|| Error::Invalid(format!("`{name}` has no llama.cpp tensor name")))?;
    let mut t = t.to_dtype(candle_core::DType::F32)?;
    if layout.arch == "llama" && gguf.contains(".attn_q.") {
        t = permute(&t, layout.heads)?;
    } else if layout.arch == "llama" && gguf.contains(".attn_k.") {
        t = permute(&t, layout.kv_heads)?;
    }
    let want = if t.rank() != 2 {
        QuantType::F32
    } else if gguf.starts_with("blk.") {
        ty
    } else {
        embedding_type(ty)
    };
    let cols = t.dims().last().copied().unwrap_or(1);
    let stored: GgmlDType = fitting_type(want, cols).ggml();
    let q = QTensor::quantize(&t, stored)
        .map_err(|e| Error::Invalid(format!("storing `{gguf}` as {stored:?}: {e}")))?;
    Ok((gguf, q))
}

/// Writes a GGUF file at `out` through `out.partial` and a rename, so that a reader never sees
/// half a file.
pub fn write_gguf_file(
    out: &Path,
    meta: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(".partial");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::new(&mut f);
    gguf_file::write(&mut w, &meta_refs, &tensor_refs)?;
    drop(w);
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_fall_back_to_blocks_that_fit() -> Result<()> {
        assert_eq!(parse_type("Q4_K")?, QuantType::Q4K);
        assert!(parse_type("q3_k").is_err());
        // SmolLM2-135M: hidden 576 is not whole 256-value blocks; its FFN's 1536 is.
        assert_eq!(fitting_type(QuantType::Q4K, 576), QuantType::Q4_1);
        assert_eq!(fitting_type(QuantType::Q4K, 1536), QuantType::Q4K);
        assert_eq!(fitting_type(QuantType::Q6K, 576), QuantType::Q8_0);
        assert_eq!(fitting_type(QuantType::Q8_0, 48), QuantType::F16);
        assert_eq!(embedding_type(QuantType::Q4_1), QuantType::Q8_0);
        Ok(())
    }
}
