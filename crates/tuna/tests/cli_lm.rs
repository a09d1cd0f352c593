//! `tuna generate`, `tuna icl` and `tuna prompt-search` on a tiny random Llama: exit codes,
//! JSON results, the saved prompt file, and clear errors.

use tuna_models::testing::write_tiny_llama;

mod common;
use common::{ok, tuna};

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_llama(&tmp.path().join("lm"), 4).unwrap();
    let rows: String = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                format!("good\tlove the film {i}\n")
            } else {
                format!("bad\thate this movie {i}\n")
            }
        })
        .collect();
    std::fs::write(tmp.path().join("data.tsv"), rows).unwrap();
    tmp
}

#[test]
fn generate_single_and_batched() {
    let tmp = setup();
    let d = tmp.path();
    let j = ok(&tuna(
        d,
        &[
            "generate",
            "-m",
            "lm",
            "--max-new-tokens",
            "5",
            "--ignore-eos",
            "--json",
            "the film",
        ],
    ));
    assert_eq!(j["generation"]["tokens"].as_array().unwrap().len(), 5);
    let j = ok(&tuna(
        d,
        &[
            "generate",
            "-m",
            "lm",
            "--max-new-tokens",
            "3",
            "--ignore-eos",
            "--temperature",
            "0.8",
            "--top-k",
            "5",
            "--json",
            "a",
            "the movie was",
        ],
    ));
    assert_eq!(j["generations"].as_array().unwrap().len(), 2);
    let out = tuna(d, &["generate", "-m", "lm", "--top-p", "1.5", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("top-p"));
}

#[test]
fn icl_and_prompt_search() {
    let tmp = setup();
    let d = tmp.path();
    let j = ok(&tuna(
        d,
        &[
            "icl",
            "-m",
            "lm",
            "--data",
            "data.tsv",
            "--split",
            "50/25/25",
            "--template",
            "Review: {text}\\nSentiment: {label}",
            "--shots",
            "2",
            "--select",
            "balanced",
            "--calibrate",
            "--dump",
            "dump.jsonl",
            "--json",
        ],
    ));
    let n = j["metrics"]["n"].as_u64().unwrap() as usize;
    assert!(n > 0);
    let dump = std::fs::read_to_string(d.join("dump.jsonl")).unwrap();
    assert_eq!(dump.lines().count(), n);
    assert!(dump.contains("content_free_prompt"));

    let j = ok(&tuna(
        d,
        &[
            "prompt-search",
            "-m",
            "lm",
            "--data",
            "data.tsv",
            "--split",
            "50/25/25",
            "--save",
            "best.json",
            "--json",
        ],
    ));
    assert_eq!(j["ranking"].as_array().unwrap().len(), 6);
    assert!(j["test"]["accuracy"].is_number());
    ok(&tuna(
        d,
        &[
            "icl",
            "-m",
            "lm",
            "--data",
            "data.tsv",
            "--split",
            "50/25/25",
            "--prompt-file",
            "best.json",
            "--json",
        ],
    ));

    let out = tuna(
        d,
        &[
            "icl",
            "-m",
            "lm",
            "--data",
            "data.tsv",
            "--template",
            "{label}: {text}",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("{text}` and then `{label}"));
}

#[test]
fn compare_runs_icl_beside_the_training_methods() {
    let tmp = setup();
    let d = tmp.path();
    let args = [
        "--json",
        "compare",
        "--methods",
        "icl",
        "--model",
        "lm",
        "--icl-model",
        "lm",
        "--icl-template",
        "Review: {text}\\nSentiment: {label}",
        "--data",
        "data.tsv",
        "--split",
        "50/25/25",
        "--method-args",
        "icl=--shots 2 --select balanced",
        "--out",
        "cmp",
    ];
    let c = ok(&tuna(d, &args));
    let rows = c["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{c}");
    assert_eq!(rows[0]["method"], "icl");
    assert_eq!(rows[0]["trainable_parameters"], 0);
    let acc = rows[0]["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{c}");
    let report = std::fs::read_to_string(d.join("cmp/report.md")).unwrap();
    assert!(report.contains("| icl |"), "{report}");
    let stored = std::fs::read_to_string(d.join("cmp/runs/icl/metrics.json")).unwrap();
    assert!(stored.contains("\"shots\": 2"), "{stored}");

    // A second compare reuses the finished run; without --icl-model icl cannot run.
    let again = ok(&tuna(d, &args));
    assert_eq!(again["rows"][0]["test_accuracy"].as_f64(), Some(acc));
    let out = tuna(
        d,
        &[
            "compare",
            "--methods",
            "icl",
            "--model",
            "lm",
            "--data",
            "data.tsv",
            "--out",
            "c2",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--icl-model"));
}

#[test]
fn a_chat_template_that_doubles_a_value_stops_at_its_memory_cap() {
    let tmp = setup();
    let d = tmp.path();
    // 40 doublings: 2^41 bytes within 200 instructions. Before the cap tuna took the machine's
    // memory and was killed; now it stops at 1 GiB with a message naming the file.
    let bombs = [
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "{% macro m(s, n) %}{{ m(s ~ s, n + 1) if n < 60 else s|length }}{% endmacro %}{{ m('ab', 0) }}",
    ];
    for template in bombs {
        let config = serde_json::json!({ "chat_template": template });
        std::fs::write(d.join("lm/tokenizer_config.json"), config.to_string()).unwrap();
        let start = std::time::Instant::now();
        let out = tuna(
            d,
            &[
                "generate",
                "-m",
                "lm",
                "--chat",
                "--max-new-tokens",
                "2",
                "hi",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(70), "{err}");
        assert!(
            err.contains("tokenizer_config.json") && err.contains("memory cap: "),
            "{err}"
        );
        assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    }
}

#[test]
fn a_runaway_chat_template_stops_with_an_error_naming_its_file() {
    let tmp = setup();
    let d = tmp.path();
    // Two nested loops of 10^5: 10^11 bytes of output, or 10^10 silent turns.
    for (body, budget) in [("0123456789", "bytes"), ("", "template instructions")] {
        let template = format!(
            "{{% for i in range(100000) %}}{{% for j in range(100000) %}}{body}{{% endfor %}}{{% endfor %}}"
        );
        let config = serde_json::json!({ "chat_template": template });
        std::fs::write(d.join("lm/tokenizer_config.json"), config.to_string()).unwrap();
        let out = tuna(
            d,
            &[
                "generate",
                "-m",
                "lm",
                "--chat",
                "--max-new-tokens",
                "2",
                "hi",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("tokenizer_config.json") && err.contains(budget),
            "{err}"
        );
    }
}
