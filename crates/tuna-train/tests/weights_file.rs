//! A checkpoint of a quantised base is written without decoding the model first: the written
//! f32 checkpoint loads with the same logits, and the model keeps its weights in their stored
//! type afterwards.

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use tuna_models::load_model;
use tuna_models::testing::{relative_max_diff, stored_linears, write_tiny_llama_gguf};
use tuna_train::finetune::merge::write_checkpoint;

#[test]
fn a_quantised_model_is_written_in_f32_one_weight_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&gguf, 3, GgmlDType::Q8_0).unwrap();
    let mut m = load_model(&gguf, &Device::Cpu).unwrap();
    let stored = |m: &mut tuna_models::Model| stored_linears(m).unwrap().0;
    let kept = stored(&mut m);
    assert!(kept > 0);
    let out = dir.path().join("ckpt");
    let n = write_checkpoint(&mut m, &out).unwrap();
    assert_eq!(stored(&mut m), kept, "writing decoded the model");
    assert!(!out.join("model.safetensors.tmp").exists());
    let file = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(file.len(), n);
    assert!(file.values().all(|t| t.dtype() == candle_core::DType::F32));
    let back = load_model(&out, &Device::Cpu).unwrap();
    let ids = m.tokenizer.encode_raw("the thin theme").unwrap();
    let (a, b) = (m.logits(&ids).unwrap(), back.logits(&ids).unwrap());
    // The model's blocks are still stored: on AVX-512 VNNI their products round the inputs to
    // 16 bits per block of 32 (`tuna_nn::quant`), about 1e-4 of the logits here.
    let d = relative_max_diff(&a, &b).unwrap();
    assert!(d < 5e-4, "written checkpoint's logits differ by {d}");
}
