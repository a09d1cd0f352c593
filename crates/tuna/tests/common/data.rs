//! Small data sets for the CLI tests, in the tiny models' vocabularies.

#![allow(dead_code)]

use std::path::Path;
use tuna_models::testing::write_tiny_llama;

/// A small spam/ham set in the tiny vocabulary, `n` rows per class.
pub fn write_sms(path: &Path, n: usize) {
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

/// A temp dir with a tiny Llama (`lm`), 12 instructions (`inst.json`) and 12 preference pairs
/// (`pairs.jsonl`) in its vocabulary.
pub fn rlhf_setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_llama(&tmp.path().join("lm"), 4).unwrap();
    let words = ["hi", "yes", "the", "in"];
    let inst: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            let w = words[i % 4];
            serde_json::json!({"instruction": format!("say {w} twice"), "input": "", "output": format!("{w} {w}")})
        })
        .collect();
    std::fs::write(
        tmp.path().join("inst.json"),
        serde_json::to_string(&inst).unwrap(),
    )
    .unwrap();
    let pairs: String = (0..12)
        .map(|i| {
            serde_json::json!({"instruction": format!("reply to {}", words[i % 4]), "input": "",
                "chosen": "thank you kindly", "rejected": "go away"})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(tmp.path().join("pairs.jsonl"), pairs).unwrap();
    tmp
}

/// A quick `tuna sft` of the tiny Llama in `d` (from [`rlhf_setup`]) into `d/sft`, which
/// leaves a LoRA adapter in `sft/adapter`; returns its JSON result.
pub fn quick_sft(d: &Path) -> serde_json::Value {
    let args = [
        "sft",
        "-m",
        "lm",
        "-d",
        "inst.json",
        "-o",
        "sft",
        "--train-batch",
        "4",
        "--max-len",
        "48",
        "--epochs",
        "1",
        "--samples",
        "0",
        "--json",
        "-q",
    ];
    super::ok(&super::tuna(d, &args))
}

/// [`quick_sft`], its adapter's alpha then raised so far that its effect on greedy answers is
/// plain (one short epoch moves LoRA little).
pub fn strong_quick_sft(d: &Path) {
    quick_sft(d);
    let cfg_path = d.join("sft/adapter/adapter_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["lora_alpha"] = serde_json::json!(20000);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
}
