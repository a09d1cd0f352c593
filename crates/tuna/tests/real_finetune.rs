//! Finetuning a real decoder end to end: SmolLM2-135M (the GGUF) as an SMS spam classifier, as
//! LLMs-from-scratch chapter 6 does with GPT-2 (balanced 747 + 747 subset, 70/10/20 split, last
//! block + final norm + a new head trained, 5 epochs, batch 8). The project promises >= 95%.
//! Needs `scripts/fetch_models.sh` (run by `scripts/test.sh`); about 10 minutes on 2 cores.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn smollm2_spam_classifier_reaches_95_percent() {
    let models = std::env::var_os("TUNA_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"));
    let model = models.join("smollm2.gguf");
    assert!(
        model.exists(),
        "{} not found: run scripts/fetch_models.sh",
        model.display()
    );
    let data = root().join("../shared/data/sms_spam/SMSSpamCollection");
    assert!(data.exists(), "{} not found", data.display());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args([
            "--json",
            "--quiet",
            "train",
            "--method",
            "head",
            "--unfreeze-last",
            "1",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .args([
            "--balance",
            "--split",
            "70/10/20",
            "--epochs",
            "5",
            "--train-batch",
            "8",
        ])
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let j: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        j["test"]["n"], 298,
        "balanced 747 + 747 examples, 20% of each class for test"
    );
    assert_eq!(
        j["trainable_parameters"], 3_541_824,
        "last block + final norm + head"
    );
    let acc = j["test"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.95, "test accuracy {acc}");
}
