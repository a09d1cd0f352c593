//! The binary on tiny models and data in a temp dir: exit codes, output, files, and errors that
//! name the file and line.

use std::path::Path;
use tuna_models::testing::write_tiny_bert;

mod common;
use common::{last_json, tuna};

/// A small spam/ham set in the tiny vocabulary, `n` rows per class.
fn write_data(path: &Path, n: usize) {
    let spam = [
        "free cash prize now !",
        "win a free prize , call now",
        "cash prize ! text stop",
    ];
    let ham = [
        "hi how are you ?",
        "see you later",
        "love the film , it was fun",
    ];
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "spam\t{} {}\n",
            spam[i % 3],
            ["now", "!", "free"][i % 3]
        ));
        s.push_str(&format!(
            "ham\t{} {}\n",
            ham[i % 3],
            ["later", "?", "fun"][i % 3]
        ));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn train_predict_and_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_data(&d.join("sms.tsv"), 30);
    let args = [
        "train", "--method", "features", "--model", "model", "--data", "sms.tsv", "--out", "run",
        "--json",
    ];
    let out = tuna(d, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = last_json(&out);
    assert_eq!(j["ok"], true);
    let acc = j["test"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert_eq!(j["test"]["n"], 6);
    for f in [
        "config.json",
        "labels.json",
        "classifier.json",
        "metrics.json",
    ] {
        assert!(d.join("run").join(f).exists(), "{f} missing");
    }
    // A rerun reads the embeddings from the cache and refuses to clobber the run.
    let again = tuna(d, &args);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    let mut args2 = args.to_vec();
    args2.push("--overwrite");
    let again = tuna(d, &args2);
    assert!(again.status.success());
    let j2 = last_json(&again);
    assert_eq!(j2["embed_seconds"], 0.0);
    assert_eq!(j2["test"], j["test"], "same seed, same result");
    let pred = tuna(
        d,
        &[
            "predict",
            "--run",
            "run",
            "free cash prize",
            "hi how are you",
            "--json",
        ],
    );
    assert!(
        pred.status.success(),
        "{}",
        String::from_utf8_lossy(&pred.stderr)
    );
    let p = last_json(&pred);
    assert_eq!(p["predictions"].as_array().unwrap().len(), 2);
}

#[test]
fn embed_writes_rows_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "distilbert", 5).unwrap();
    std::fs::write(d.join("texts.txt"), "good movie\nawful film\ngood movie\n").unwrap();
    let out = tuna(
        d,
        &[
            "embed",
            "--model",
            "model",
            "--input",
            "texts.txt",
            "--format",
            "lines",
            "--out",
            "e.jsonl",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_json(&out)["rows"], 3);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(d.join("e.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["embedding"], rows[2]["embedding"]);
    assert_ne!(rows[0]["embedding"], rows[1]["embedding"]);
    assert_eq!(rows[0]["embedding"].as_array().unwrap().len(), 32);
}

#[test]
fn bad_input_names_file_and_line_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_data(&d.join("train.tsv"), 10);
    std::fs::write(d.join("test.tsv"), "spam\tfree cash\nmaybe\thi there\n").unwrap();
    let out = tuna(
        d,
        &[
            "train",
            "--model",
            "model",
            "--train",
            "train.tsv",
            "--test",
            "test.tsv",
            "--out",
            "run",
            "--json",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("test.tsv") && err.contains("line 2") && err.contains("maybe"),
        "{err}"
    );
    assert_eq!(last_json(&out)["ok"], false);
    assert!(!d.join("run").exists() && !d.join("run.partial").exists());
    let out = tuna(d, &["train", "--model", "model", "--data", "missing.tsv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.tsv"));
    std::fs::write(d.join("empty_text.tsv"), "spam\tfree\nham\t   \n").unwrap();
    let out = tuna(
        d,
        &["train", "--model", "model", "--data", "empty_text.tsv"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line 2"), "{err}");
    let out = tuna(d, &["train", "--model", "nope", "--data", "train.tsv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn info_refuses_a_config_whose_heads_do_not_divide_the_hidden_size() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    let p = d.join("model/config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    c["num_attention_heads"] = 7.into();
    std::fs::write(&p, c.to_string()).unwrap();
    let out = tuna(d, &["info", "--model", "model"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("config.json") && err.contains("`num_attention_heads` = 7"),
        "{err}"
    );
}
