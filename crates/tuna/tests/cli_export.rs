//! `tuna export --gguf`: a LoRA adapter from `tuna sft` on a tiny Llama as a GGUF adapter file,
//! read back by llama.cpp's own Python reader (`gguf` from PyPI, through
//! scripts/check_gguf_adapter.py) when `TUNA_TEST_PYTHONPATH` names where it is installed
//! (scripts/test.sh installs it with scripts/pydeps.sh).

mod common;
use candle_core::quantized::gguf_file::Content;
use common::data::{quick_sft as sft, rlhf_setup as setup};
use common::{ok, python_check, tuna};

#[test]
fn a_lora_adapter_exports_as_a_gguf_adapter_llama_cpp_reads() {
    let tmp = setup();
    let d = tmp.path();
    sft(d);
    let j = ok(&tuna(
        d,
        &[
            "export",
            "--adapter",
            "sft",
            "-m",
            "lm",
            "--gguf",
            "sft.gguf",
            "--json",
            "-q",
        ],
    ));
    assert_eq!(j["format"], "gguf");
    let layers = j["layers"].as_u64().unwrap();
    assert!(layers >= 2, "{j}");
    assert!(!d.join("sft.gguf.partial").exists());

    // Our own reader: the metadata and one A/B pair per adapted layer.
    let mut f = std::fs::File::open(d.join("sft.gguf")).unwrap();
    let content = Content::read(&mut f).unwrap();
    let meta = |k: &str| content.metadata[k].to_string().unwrap().clone();
    assert_eq!(meta("general.type"), "adapter");
    assert_eq!(meta("adapter.type"), "lora");
    assert_eq!(meta("general.architecture"), "llama");
    assert_eq!(content.tensor_infos.len() as u64, 2 * layers);
    assert!(content
        .tensor_infos
        .contains_key("blk.0.attn_q.weight.lora_a"));
    assert!(content
        .tensor_infos
        .contains_key("blk.0.attn_v.weight.lora_b"));

    // llama.cpp's reader, against the PEFT adapter (the tiny Llama: 4 heads, 2 KV heads).
    let args = ["sft.gguf", "sft/adapter", "4", "2", "llama"];
    let Some(said) = python_check("check_gguf_adapter.py", &args, d) else {
        return;
    };
    assert!(said.contains(&format!("\"pairs\": {layers}")), "{said}");
}

#[test]
fn export_refuses_what_llama_cpp_cannot_load_and_says_why() {
    let tmp = setup();
    let d = tmp.path();
    // Not an adapter at all.
    let out = tuna(d, &["export", "--adapter", "lm", "--gguf", "x.gguf"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("holds no adapter"),
        "{err}"
    );
    // A prompt-tuning adapter: llama.cpp loads LoRA only.
    sft(d);
    let cfg_path = d.join("sft/adapter/adapter_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["peft_type"] = "PROMPT_TUNING".into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out = tuna(
        d,
        &["export", "--adapter", "sft", "-m", "lm", "--gguf", "x.gguf"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("PROMPT_TUNING") && err.contains("LoRA adapters only"),
        "{err}"
    );
    assert!(!d.join("x.gguf").exists());
}
