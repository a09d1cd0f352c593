//! The binary on tiny models and data in a temp dir: exit codes, output, files, and errors that
//! name the file and line.

use std::path::Path;
use tuna_models::testing::write_tiny_bert;

mod common;
use common::data::write_sms as write_data;
use common::{last_json, tuna};

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
fn an_out_file_of_an_unknown_kind_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("texts.txt"), "good movie\n").unwrap();
    // No model at all: the --out check must come first, not after embedding every text.
    let out = tuna(
        d,
        &[
            "embed",
            "-m",
            "no-such-model",
            "-i",
            "texts.txt",
            "-o",
            "e.npy",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--out e.npy: must end in .safetensors or .jsonl"),
        "{err}"
    );
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
fn an_error_is_one_message_even_with_rust_backtrace_set() {
    // A config whose feed-forward size disagrees with the weights: a consistent config that
    // passes the load checks, so candle's own shape error comes up, which carries a backtrace
    // whenever RUST_BACKTRACE is set.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    let p = d.join("model/config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    c["intermediate_size"] = (c["intermediate_size"].as_u64().unwrap() + 1).into();
    std::fs::write(&p, c.to_string()).unwrap();
    std::fs::write(d.join("texts.txt"), "zebra crossing ahead\n").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "embed",
            "-m",
            "model",
            "-i",
            "texts.txt",
            "--format",
            "lines",
        ];
        args.extend(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tuna"))
            .args(&args)
            .current_dir(d)
            .env("TUNA_CACHE_DIR", d.join("cache"))
            .env("RAYON_NUM_THREADS", "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[]);
    let message = &err[err.find("error:").expect("an error line")..];
    assert!(
        !err.to_lowercase().contains("stack backtrace") && message.trim_end().lines().count() == 1,
        "more than one message:\n{err}"
    );
    assert!(message.contains("shape"), "{err}");
    // Asked for with -v, the backtrace is there.
    let verbose = run(&["-v"]);
    assert!(verbose.contains("Error::bt"), "{verbose}");
}

#[test]
fn runs_started_together_get_their_own_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_data(&d.join("sms.tsv"), 10);
    let args = [
        "--json",
        "-q",
        "train",
        "--model",
        "model",
        "--data",
        "sms.tsv",
        "--no-cache",
    ];
    // No --out: every run names its own directory under runs/, in the same second.
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_tuna"))
                .args(args)
                .current_dir(d)
                .env("RAYON_NUM_THREADS", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut runs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            common::ok(&out)["run"].as_str().unwrap().to_string()
        })
        .collect();
    runs.sort();
    runs.dedup();
    assert_eq!(runs.len(), 3, "{runs:?}");
    for r in &runs {
        assert!(r.starts_with("runs/features-logreg-"), "{r}");
        assert!(d.join(r).join("classifier.json").exists(), "{r}");
    }
}

#[test]
fn overwrite_replaces_only_tuna_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_data(&d.join("sms.tsv"), 10);
    std::fs::create_dir_all(d.join("scratch")).unwrap();
    std::fs::write(d.join("scratch/notes.txt"), "my own notes").unwrap();
    let train = |out: &str| {
        let args = [
            "train",
            "--model",
            "model",
            "--data",
            "sms.tsv",
            "--out",
            out,
            "--overwrite",
        ];
        tuna(d, &args)
    };
    let out = train("scratch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a user's folder was replaced");
    assert!(
        err.contains("was not written by tuna") && err.contains("scratch"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("scratch/notes.txt")).unwrap(),
        "my own notes"
    );
    // A run of tuna's is replaced, marker and all; so is one of an earlier version (no marker).
    assert!(train("run").status.success());
    assert!(d.join("run/.tuna-run").exists());
    std::fs::remove_file(d.join("run/.tuna-run")).unwrap();
    assert!(train("run").status.success());
    assert!(d.join("run/.tuna-run").exists() && d.join("run/classifier.json").exists());
}

#[test]
fn predict_finds_the_model_from_the_run_not_the_current_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    write_tiny_bert(&proj.join("model"), "bert", 5).unwrap();
    write_data(&proj.join("sms.tsv"), 10);
    std::fs::create_dir_all(proj.join("elsewhere")).unwrap();
    let args = [
        "train",
        "--model",
        "model",
        "--data",
        "sms.tsv",
        "--out",
        "runs/r",
        "--no-cache",
    ];
    assert!(tuna(&proj, &args).status.success());
    let predict = |cwd: &Path, run: &str| {
        let out = tuna(cwd, &["--json", "predict", "--run", run, "free cash"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "from {cwd:?}: {err}");
        (common::last_json(&out), err)
    };
    // A run of an earlier version recorded the model as typed, relative to where training ran.
    let config = proj.join("runs/r/config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let recorded = c["model"].as_str().unwrap().to_string();
    assert!(Path::new(&recorded).is_absolute(), "{recorded}");
    assert_eq!(c["model_from_run"], "../../model");
    let new = c.clone();
    c["model"] = "model".into();
    c.as_object_mut().unwrap().remove("model_from_run");
    std::fs::write(&config, c.to_string()).unwrap();
    let (_, from_root) = predict(&proj, "runs/r");
    let (j, err) = predict(&proj.join("elsewhere"), "../runs/r");
    assert!(
        err.contains("model: ") && err.contains("found from"),
        "{err}"
    );
    let used = std::fs::canonicalize(j["model"].as_str().unwrap()).unwrap();
    assert_eq!(used, std::fs::canonicalize(proj.join("model")).unwrap());
    assert!(from_root.contains("model: "), "{from_root}");
    // A run of this version, moved together with its model: found relative to the run.
    std::fs::write(&config, new.to_string()).unwrap();
    let moved = tmp.path().join("moved");
    std::fs::rename(&proj, &moved).unwrap();
    let (j, err) = predict(tmp.path(), "moved/runs/r");
    assert!(err.contains("relative to the run"), "{err}");
    assert_eq!(j["predictions"].as_array().unwrap().len(), 1);
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
