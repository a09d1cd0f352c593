//! Finetuning from the command line on a tiny model: a LoRA run is saved in PEFT's layout,
//! predicts, merges into a plain checkpoint, and `tuna compare` reports several methods.

use std::path::Path;
use std::process::Output;
use tuna_models::testing::write_tiny_bert;

mod common;
use common::data::write_sms;
use common::last_json;

/// Runs tuna and asserts it succeeded.
fn tuna(dir: &Path, args: &[&str]) -> Output {
    let out = common::tuna(dir, args);
    assert!(
        out.status.success(),
        "tuna {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn lora_run_predicts_merges_and_compare_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_sms(&d.join("sms.tsv"), 30);
    let common = [
        "--model", "model", "--data", "sms.tsv", "--epochs", "2", "--lr", "0.01",
    ];
    let mut args = vec!["--json", "train", "--method", "lora", "--out", "lora"];
    args.extend(common);
    let j = last_json(&tuna(d, &args));
    assert_eq!(j["ok"], true);
    assert_eq!(
        j["trainable_parameters"],
        2 * 2 * 8 * (32 + 32) + 32 * 2 + 2
    );
    for f in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "head.safetensors",
        "history.csv",
        "curves.svg",
        "metrics.json",
    ] {
        assert!(d.join("lora").join(f).exists(), "{f} missing");
    }
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("lora/adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["target_modules"], serde_json::json!(["query", "value"]));

    let p = last_json(&tuna(
        d,
        &[
            "--json",
            "predict",
            "--run",
            "lora",
            "free cash prize",
            "see you later",
        ],
    ));
    assert_eq!(p["predictions"].as_array().unwrap().len(), 2);

    let m = last_json(&tuna(
        d,
        &["--json", "merge", "--run", "lora", "--out", "merged"],
    ));
    assert!(m["max_difference"].as_f64().unwrap() < 1e-4, "{m}");
    assert!(d.join("merged/model.safetensors").exists() && d.join("merged/config.json").exists());

    let mut args = vec![
        "--json",
        "compare",
        "--methods",
        "features,head,lora",
        "--out",
        "cmp",
        "--epochs",
        "1",
    ];
    args.extend(["--model", "model", "--data", "sms.tsv"]);
    let c = last_json(&tuna(d, &args));
    assert_eq!(c["rows"].as_array().unwrap().len(), 3);
    let report = std::fs::read_to_string(d.join("cmp/report.md")).unwrap();
    for m in ["| features |", "| head |", "| lora |"] {
        assert!(report.contains(m), "{report}");
    }
    assert!(d.join("cmp/accuracy.svg").exists());
}

#[test]
fn dora_and_ia3_runs_save_peft_adapters_predict_and_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_sms(&d.join("sms.tsv"), 30);
    // Tiny BERT: hidden 32, intermediate 64 (`tuna_models::testing`), 2 layers.
    for (method, peft_type, trainable) in [
        ("dora", "LORA", 2 * 2 * (8 * (32 + 32) + 32) + 32 * 2 + 2),
        ("ia3", "IA3", 2 * (3 * 32 + 64) + 32 * 2 + 2),
    ] {
        let args = [
            "--json", "train", "--method", method, "--out", method, "--model", "model", "--data",
            "sms.tsv", "--epochs", "2", "--lr", "0.01",
        ];
        let j = last_json(&tuna(d, &args));
        assert_eq!(j["ok"], true, "{method}: {j}");
        assert_eq!(j["trainable_parameters"], trainable, "{method}");
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.join(method).join("adapter/adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["peft_type"], peft_type, "{method}");
        assert_eq!(cfg["use_dora"] == true, method == "dora", "{method}");
        let p = last_json(&tuna(
            d,
            &["--json", "predict", "--run", method, "free cash"],
        ));
        assert_eq!(p["predictions"].as_array().unwrap().len(), 1, "{method}");
        let out = format!("{method}-merged");
        let m = last_json(&tuna(
            d,
            &["--json", "merge", "--run", method, "--out", &out],
        ));
        assert!(
            m["max_difference"].as_f64().unwrap() < 1e-4,
            "{method}: {m}"
        );
    }
    // Bottleneck adapters cannot be folded into the weights: a clear refusal.
    let args = [
        "train", "--method", "adapter", "--out", "ad", "--model", "model", "--data", "sms.tsv",
        "--epochs", "1",
    ];
    assert!(tuna(d, &args).status.success());
    let o = common::tuna(d, &["merge", "--run", "ad", "--out", "ad-merged"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("only `lora`, `dora` and `ia3` runs fold"),
        "{err}"
    );
}

#[test]
fn head_learns_its_pooling_and_fixed_embeddings_refuse_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_sms(&d.join("sms.tsv"), 30);
    let data = ["--model", "model", "--data", "sms.tsv"];
    let mut args = vec!["--json", "train", "--method", "head", "--out", "head"];
    args.extend(data);
    args.extend(["--epochs", "2", "--lr", "0.01"]);
    let j = last_json(&tuna(d, &args));
    // Attention pooling's score vector (hidden 32) + the linear layer.
    assert_eq!(j["trainable_parameters"], 32 + 32 * 2 + 2, "{j}");
    let config = std::fs::read_to_string(d.join("head/config.json")).unwrap();
    assert!(config.contains("\"attention\""), "{config}");
    let p = last_json(&tuna(
        d,
        &["--json", "predict", "--run", "head", "free cash prize"],
    ));
    assert_eq!(p["predictions"].as_array().unwrap().len(), 1);

    let mut args = vec!["train", "--method", "features", "--pooling", "attention"];
    args.extend(data);
    let out = common::tuna(d, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("learned with a finetuned head"),
        "{err}"
    );
}
