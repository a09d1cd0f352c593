//! Test support: the adapters PEFT wrote for a tiny random BERT
//! (`bench/reference/make_peft_fixture.py`, in `tests/fixtures/peft/`), loaded through a
//! method's own PEFT reader and compared with PEFT's hidden states.

use crate::{peft, Method, MethodName};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use tuna_core::Rng;
use tuna_models::tokenizer::pad_batch;
use tuna_models::{load_model, Model};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft")
}

fn expected(key: &str) -> Tensor {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows: Vec<Vec<f32>> = serde_json::from_value(v[key].clone()).unwrap();
    Tensor::new(rows, &Device::Cpu).unwrap()
}

/// The fixture's base model, with the tiny test model's tokenizer (ids are given).
fn base(dir: &Path) -> Model {
    tuna_models::testing::write_tiny_bert(&dir.join("tok"), "bert", 1).unwrap();
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("base").join(f), base.join(f)).unwrap();
    }
    std::fs::copy(dir.join("tok/tokenizer.json"), base.join("tokenizer.json")).unwrap();
    load_model(&base, &Device::Cpu).unwrap()
}

/// Largest difference between tuna's hidden states with PEFT's adapter `name` and PEFT's own
/// (`key` in expected.json); the adapter must read back as `method`.
pub fn difference(name: &str, key: &str, method: MethodName) -> f32 {
    let d = tempfile::tempdir().unwrap();
    let mut model = base(d.path());
    let dir = fixtures().join(name);
    let cfg = peft::read_config(&dir).unwrap();
    let m = Method::from_peft(&cfg, &dir.join(peft::CONFIG)).unwrap();
    assert_eq!(m.name(), method, "{name}: read as another method");
    let mut hook = m.attach(&mut model, &mut Rng::new(0)).unwrap();
    if let Some(h) = &mut hook {
        h.to_saved_form().unwrap();
    }
    let mut tensors = peft::read_tensors(&dir.join(peft::WEIGHTS), &Device::Cpu).unwrap();
    let mut put = |n: &str, t: &mut Tensor| {
        if let Some(v) = tensors.remove(n) {
            assert_eq!(v.dims(), t.dims(), "{name}: {n}");
            *t = v;
        }
        Ok(())
    };
    model.network.visit(&mut put).unwrap();
    if let Some(h) = &mut hook {
        h.visit(&mut put).unwrap();
    }
    assert!(tensors.is_empty(), "{name}: unused {:?}", tensors.keys());
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<u32> = serde_json::from_value(v["input_ids"][0].clone()).unwrap();
    let batch = pad_batch(&[ids], model.tokenizer.pad_id, &Device::Cpu).unwrap();
    let got = crate::input::hidden_states(&model.network, hook.as_deref(), &batch).unwrap();
    let diff = (got.squeeze(0).unwrap() - expected(key))
        .unwrap()
        .abs()
        .unwrap();
    diff.max_all().unwrap().to_scalar::<f32>().unwrap()
}
