//! A Hugging Face Llama checkpoint stored in BF16 or F16 keeps its blocks' linear weights in that
//! type by default (two bytes a value), with logits equal to decoding them to f32 at load
//! (`--dtype f32`) to 1e-5 of the largest logit.
//! (Its own test binary: the stored-or-f32 switch is process-wide.)

use candle_core::{DType, Device, Tensor};
use tuna_models::load_model;
use tuna_models::testing::{relative_max_diff, stored_linears, write_tiny_llama};

/// The tiny Llama in `dir`, every tensor rewritten in `dtype`.
fn write_half(dir: &std::path::Path, dtype: DType) {
    write_tiny_llama(dir, 11).unwrap();
    let file = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let half: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(dtype).unwrap()))
        .collect();
    candle_core::safetensors::save(&half, &file).unwrap();
}

#[test]
fn half_precision_checkpoints_keep_their_block_weights_as_stored() {
    for dtype in [DType::BF16, DType::F16] {
        let dir = tempfile::tempdir().unwrap();
        write_half(dir.path(), dtype);
        tuna_models::registry::set_stored_as_f32(true);
        let mut decoded = load_model(dir.path(), &Device::Cpu).unwrap();
        tuna_models::registry::set_stored_as_f32(false);
        let mut stored = load_model(dir.path(), &Device::Cpu).unwrap();
        let (q, all) = stored_linears(&mut stored).unwrap();
        assert_eq!(q, all, "{dtype:?}: every block linear weight stays stored");
        assert_eq!(
            stored_linears(&mut decoded).unwrap().0,
            0,
            "{dtype:?}: --dtype f32 decodes them"
        );
        let ids = stored.tokenizer.encode_raw("the thin theme").unwrap();
        let (a, b) = (decoded.logits(&ids).unwrap(), stored.logits(&ids).unwrap());
        let d = relative_max_diff(&a, &b).unwrap();
        assert!(d < 1e-5, "{dtype:?}: logits differ by {d} of the largest");
    }
}

#[test]
fn an_f32_checkpoint_loads_as_before() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), 11).unwrap();
    let mut m = load_model(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(stored_linears(&mut m).unwrap().0, 0);
}
