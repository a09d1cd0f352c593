//! Mutated weights (safetensors), `config.json` and `tokenizer.json` of tiny BERT, DistilBERT
//! and Llama directories, loaded and run as `tuna` does.

mod common;

use common::{load_and_run, read_dir_files};
use std::path::Path;
use tuna_fuzz::{Campaign, Mutator, Style};
use tuna_models::testing::{write_tiny_bert, write_tiny_llama};

/// JSON syntax and values worth inserting into configs and tokenizers.
const JSON_TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "-",
    "e99",
    "\\u0000",
    "\\ud800",
    "\u{feff}",
    "\"vocab_size\": 0,",
    "\"num_attention_heads\": 7,",
    "\"hidden_size\": 3,",
    "\"max_position_embeddings\": 2147483647,",
    "\"num_hidden_layers\": 1000000,",
];

/// Writes each tiny model once; returns (name, directory) pairs.
fn tiny_models(root: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut dirs = Vec::new();
    for (name, flavor) in [
        ("bert", "bert"),
        ("distilbert", "distilbert"),
        ("llama", "llama"),
    ] {
        let dir = root.join(name);
        match flavor {
            "llama" => write_tiny_llama(&dir, 3).expect("tiny llama"),
            _ => write_tiny_bert(&dir, flavor, 3).expect("tiny bert"),
        }
        dirs.push((name, dir));
    }
    dirs
}

/// Fuzzes `file` of every tiny model: each case writes the mutant over it in a working copy of
/// the directory and loads the directory.
fn fuzz_file(file: &'static str, campaign: &'static str, cases: usize, mutator: Mutator) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut findings = Vec::new();
    for (model, dir) in tiny_models(tmp.path()) {
        let work = tmp.path().join(format!("{model}-work"));
        std::fs::create_dir_all(&work).expect("work dir");
        let mut seed = Vec::new();
        for (name, bytes) in read_dir_files(&dir) {
            std::fs::write(work.join(&name), &bytes).expect("copy");
            if name == file {
                seed = bytes;
            }
        }
        let name = format!("{campaign}_{model}");
        let target = work.join(file);
        let report = Campaign::new(name.as_str(), cases).run(&[seed], &mutator, move |bytes| {
            std::fs::write(&target, bytes).expect("write case");
            load_and_run(target.parent().expect("dir"))
        });
        findings.push((name, report));
    }
    for (name, report) in &findings {
        report.assert_clean(name);
    }
}

#[test]
fn mutated_safetensors_weights_load_or_fail_cleanly() {
    let mutator = Mutator::new(Style::Binary { header: 512 }, &[]);
    fuzz_file("model.safetensors", "safetensors", 3000, mutator);
}

#[test]
fn mutated_configs_load_or_fail_cleanly() {
    fuzz_file(
        "config.json",
        "config",
        3000,
        Mutator::new(Style::Json, JSON_TOKENS),
    );
}

#[test]
fn mutated_tokenizers_load_or_fail_cleanly() {
    fuzz_file(
        "tokenizer.json",
        "tokenizer",
        3000,
        Mutator::new(Style::Json, JSON_TOKENS),
    );
}
