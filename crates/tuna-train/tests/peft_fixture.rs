//! tuna loads adapters made by PEFT (fixtures written by bench/reference/make_peft_fixture.py
//! with transformers + PEFT on a tiny BERT) and reproduces PEFT's outputs.

use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use tuna_models::load_model;
use tuna_models::testing::write_tiny_bert;
use tuna_models::tokenizer::pad_batch;
use tuna_nn::Pooling;
use tuna_train::finetune::{apply_peft_adapter, LoraSettings, MethodConfig, MethodKind};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft")
}

fn base_method() -> MethodConfig {
    MethodConfig {
        kind: MethodKind::Head,
        unfreeze_last: 0,
        lora: LoraSettings {
            r: 1,
            alpha: 1.0,
            dropout: 0.0,
            targets: vec![],
            target_regex: None,
        },
        adapter_size: 1,
        virtual_tokens: 1,
        prefix_hidden: 8,
        prompt_init: None,
        pooling: Pooling::Mean,
        head_hidden: 0,
        head_dropout: 0.0,
    }
}

#[test]
fn lora_prompt_and_prefix_from_peft_match_peft_outputs() {
    let f = fixtures();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.join("expected.json")).unwrap()).unwrap();
    // The fixture's base has no tokenizer (ids are given): borrow the tiny model's.
    let d = tempfile::tempdir().unwrap();
    write_tiny_bert(&d.path().join("tok"), "bert", 1).unwrap();
    let base = d.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(f.join("base").join(file), base.join(file)).unwrap();
    }
    std::fs::copy(
        d.path().join("tok/tokenizer.json"),
        base.join("tokenizer.json"),
    )
    .unwrap();

    let ids: Vec<u32> = expected["input_ids"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let want = |key: &str| -> Tensor {
        let rows: Vec<Vec<f32>> = serde_json::from_value(expected[key].clone()).unwrap();
        Tensor::new(rows, &Device::Cpu).unwrap()
    };
    let model = load_model(&base, &Device::Cpu).unwrap();
    let batch = pad_batch(
        std::slice::from_ref(&ids),
        model.tokenizer.pad_id,
        &Device::Cpu,
    )
    .unwrap();
    let got = model.hidden_states(&batch).unwrap().squeeze(0).unwrap();
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(
        diff(&got, &want("base_last_hidden_state")) < 1e-4,
        "base model differs"
    );

    for (adapter, key) in [
        ("lora", "last_hidden_state"),
        ("prompt", "prompt_last_hidden_state"),
        ("prefix", "prefix_last_hidden_state"),
    ] {
        let model = load_model(&base, &Device::Cpu).unwrap();
        let tm = apply_peft_adapter(model, &f.join(adapter), &base_method(), 2).unwrap();
        let got = tm.hidden(&batch).unwrap().squeeze(0).unwrap();
        let d = diff(&got, &want(key));
        assert!(d < 1e-4, "{adapter}: max difference {d} from PEFT");
    }
}
