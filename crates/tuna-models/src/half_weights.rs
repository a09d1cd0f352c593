//! Hugging Face safetensors of a Llama-style decoder whose block weights are stored in F16 or
//! BF16 (most published checkpoints): those weights are kept as stored, two bytes a value, and
//! products convert them inside the kernel (`tuna_nn::quant`), as GGUF weights are kept in
//! their block types. Everything else (embeddings, norms, biases, the output layer) is read
//! into f32 as before.

use candle_core::quantized::GgmlDType;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tuna_core::{Error, Result};
use tuna_nn::quant::QuantMatrix;

/// The tensors of a checkpoint with its half-precision block weights kept.
pub struct HalfWeights {
    /// Every tensor in f32, except the kept ones: shape-only placeholders (a broadcast zero).
    pub tensors: HashMap<String, Tensor>,
    /// The kept weights by name.
    pub kept: HashMap<String, Arc<QuantMatrix>>,
}

/// The decoder blocks' linear weights (`model.layers.N.self_attn.q_proj.weight`, ...).
fn block_linear(name: &str) -> bool {
    const KINDS: [&str; 7] = [
        ".self_attn.q_proj.",
        ".self_attn.k_proj.",
        ".self_attn.v_proj.",
        ".self_attn.o_proj.",
        ".mlp.gate_proj.",
        ".mlp.up_proj.",
        ".mlp.down_proj.",
    ];
    name.starts_with("model.layers.")
        && name.ends_with(".weight")
        && KINDS.iter().any(|k| name.contains(k))
}

/// Reads `files` keeping the block weights stored in F16 or BF16; `None` when there are none
/// (an f32 checkpoint loads as before, memory-mapped).
pub fn read_half_weights(files: &[PathBuf], device: &Device) -> Result<Option<HalfWeights>> {
    let bad = |e: candle_core::Error| Error::Invalid(format!("reading the safetensors: {e}"));
    // SAFETY: the files are memory-mapped read-only; tuna never writes to model files.
    let st = unsafe { MmapedSafetensors::multi(files) }.map_err(bad)?;
    let views = st.tensors();
    let half = |v: &safetensors::tensor::TensorView| match v.dtype() {
        safetensors::Dtype::F16 => Some(GgmlDType::F16),
        safetensors::Dtype::BF16 => Some(GgmlDType::BF16),
        _ => None,
    };
    let keeps = |name: &str, v: &safetensors::tensor::TensorView| {
        block_linear(name) && v.shape().len() == 2 && half(v).is_some()
    };
    if !device.is_cpu() || !views.iter().any(|(n, v)| keeps(n, v)) {
        return Ok(None);
    }
    let (mut tensors, mut kept) = (HashMap::new(), HashMap::new());
    for (name, view) in &views {
        match half(view).filter(|_| keeps(name, view)) {
            Some(ty) => {
                let (rows, cols) = (view.shape()[0], view.shape()[1]);
                let m =
                    QuantMatrix::from_bytes(view.data().to_vec(), ty, (rows, cols)).map_err(bad)?;
                let none = Tensor::zeros((), DType::F32, device)?;
                tensors.insert(name.clone(), none.broadcast_as((rows, cols))?);
                kept.insert(name.clone(), Arc::new(m));
            }
            None => {
                let t = st.load(name, device).map_err(bad)?.to_dtype(DType::F32)?;
                tensors.insert(name.clone(), t);
            }
        }
    }
    Ok(Some(HalfWeights { tensors, kept }))
}
