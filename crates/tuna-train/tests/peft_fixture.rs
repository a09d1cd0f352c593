//! tuna loads adapters made by PEFT (fixtures written by bench/reference/make_peft_fixture.py
//! with transformers + PEFT on a tiny BERT) and reproduces PEFT's outputs.

use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use tuna_adapt::MethodName;
use tuna_models::load_model;
use tuna_models::testing::write_tiny_bert;
use tuna_models::tokenizer::pad_batch;
use tuna_nn::Pooling;
use tuna_train::finetune::{apply_peft_adapter, HeadConfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuna-adapt/tests/fixtures/peft")
}

fn head() -> HeadConfig {
    HeadConfig {
        pooling: Pooling::Mean,
        hidden: 0,
        dropout: 0.0,
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

    // IA3's key vectors move this tiny model's output by about 1.5e-5 only, so IA3 is held
    // to a tighter bound than the others (the expected values are rounded to 6 decimals).
    for (adapter, key, method, tol) in [
        ("lora", "last_hidden_state", MethodName::Lora, 1e-4),
        (
            "prompt",
            "prompt_last_hidden_state",
            MethodName::Prompt,
            1e-4,
        ),
        (
            "prefix",
            "prefix_last_hidden_state",
            MethodName::Prefix,
            1e-4,
        ),
        ("dora", "dora_last_hidden_state", MethodName::Dora, 1e-4),
        ("ia3", "ia3_last_hidden_state", MethodName::Ia3, 3e-6),
    ] {
        let model = load_model(&base, &Device::Cpu).unwrap();
        let tm = apply_peft_adapter(model, &f.join(adapter), &head(), 2).unwrap();
        assert_eq!(
            tm.method.name(),
            method,
            "{adapter}: read as another method"
        );
        let got = tm.hidden(&batch).unwrap().squeeze(0).unwrap();
        let d = diff(&got, &want(key));
        println!("{adapter}: max difference {d:e} from PEFT");
        assert!(d < tol, "{adapter}: max difference {d} from PEFT");
    }
}
