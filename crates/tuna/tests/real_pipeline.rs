//! The feature-based method end to end on the real MiniLM and the real datasets, with the
//! accuracy the project promises. Needs `scripts/fetch_models.sh` (run by `scripts/test.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn minilm() -> PathBuf {
    let dir = std::env::var_os("TUNA_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"));
    let m = dir.join("minilm");
    assert!(
        m.exists(),
        "{} not found: run scripts/fetch_models.sh",
        m.display()
    );
    m
}

fn shared(rel: &str) -> String {
    let p = root().join("../shared/data").join(rel);
    assert!(
        p.exists(),
        "{} not found (the shared data folder sits beside the repo)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

fn train(dir: &Path, data_args: &[String]) -> serde_json::Value {
    let model = minilm();
    let mut args: Vec<String> = [
        "train",
        "--method",
        "features",
        "--classifier",
        "logreg",
        "--model",
    ]
    .map(String::from)
    .to_vec();
    args.push(model.to_string_lossy().into_owned());
    args.extend(data_args.iter().cloned());
    args.extend([
        "--out".into(),
        dir.join("run").to_string_lossy().into_owned(),
        "--json".into(),
        "--quiet".into(),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(&args)
        .env("TUNA_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn sms_spam_features_logreg_reaches_97_5() {
    let tmp = tempfile::tempdir().unwrap();
    let j = train(
        tmp.path(),
        &[
            "--data".into(),
            shared("sms_spam/SMSSpamCollection"),
            "--split".into(),
            "80/10/10".into(),
            "--seed".into(),
            "42".into(),
        ],
    );
    let acc = j["test"]["accuracy"].as_f64().unwrap();
    assert_eq!(j["test"]["n"], 558);
    assert!(acc >= 0.975, "SMS spam test accuracy {acc}");
}

#[test]
fn sst2_features_logreg_reaches_79() {
    let tmp = tempfile::tempdir().unwrap();
    let j = train(
        tmp.path(),
        &[
            "--train".into(),
            shared("sst2/stsa.binary.train"),
            "--val".into(),
            shared("sst2/stsa.binary.dev"),
            "--test".into(),
            shared("sst2/stsa.binary.test"),
            "--format".into(),
            "label-text".into(),
        ],
    );
    let acc = j["test"]["accuracy"].as_f64().unwrap();
    assert_eq!(j["test"]["n"], 1821);
    assert!(acc >= 0.79, "SST-2 test accuracy {acc}");
}
