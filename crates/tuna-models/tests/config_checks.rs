//! Configs that cannot work are refused at load, naming the file and the field as the source
//! spells it: `config.json` (BERT, DistilBERT, Llama) and GGUF metadata.

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use std::path::Path;
use tuna_models::load_model;
use tuna_models::testing::{write_tiny_bert, write_tiny_llama, write_tiny_llama_gguf_with};

/// Sets `key` of the directory's config.json to `value`.
fn patch_config(dir: &Path, key: &str, value: serde_json::Value) {
    let p = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    c[key] = value;
    std::fs::write(&p, c.to_string()).unwrap();
}

fn load_err(path: &Path) -> String {
    match load_model(path, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bert_heads_that_do_not_divide_the_hidden_size_are_refused_at_load() {
    // Hidden size 32: 7 heads loaded before and failed later in `embed` with a shape mismatch.
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), "bert", 1).unwrap();
    patch_config(dir.path(), "num_attention_heads", 7.into());
    let e = load_err(dir.path());
    assert!(
        e.contains("config.json")
            && e.contains("`num_attention_heads` = 7 does not divide `hidden_size` = 32"),
        "{e}"
    );
}

#[test]
fn distilbert_fields_are_named_as_its_config_spells_them() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), "distilbert", 1).unwrap();
    patch_config(dir.path(), "n_heads", 5.into());
    patch_config(dir.path(), "hidden_dim", 0.into());
    let e = load_err(dir.path());
    assert!(
        e.contains("`n_heads` = 5 does not divide `dim` = 32"),
        "{e}"
    );
    assert!(e.contains("`hidden_dim` is 0"), "{e}");
}

#[test]
fn a_vocabulary_that_disagrees_with_the_embedding_or_the_tokenizer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), "bert", 1).unwrap();
    patch_config(dir.path(), "vocab_size", 20.into());
    let e = load_err(dir.path());
    assert!(
        e.contains("`embeddings.word_embeddings.weight` has shape [41, 32], but `vocab_size` = 20"),
        "{e}"
    );
    assert!(
        e.contains("the tokenizer has 41 tokens but `vocab_size` = 20"),
        "{e}"
    );
}

#[test]
fn llama_kv_heads_and_sizes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), 1).unwrap();
    patch_config(dir.path(), "num_key_value_heads", 3.into());
    patch_config(dir.path(), "intermediate_size", 0.into());
    let e = load_err(dir.path());
    assert!(e.contains("config.json: unusable model config"), "{e}");
    assert!(
        e.contains("`num_key_value_heads` = 3 does not divide `num_attention_heads` = 4"),
        "{e}"
    );
    assert!(e.contains("`intermediate_size` is 0"), "{e}");
}

#[test]
fn gguf_metadata_is_checked_with_its_own_key_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf_with(
        &p,
        1,
        GgmlDType::F32,
        &[("llama.attention.head_count", Value::U32(3))],
    )
    .unwrap();
    let e = load_err(&p);
    assert!(
        e.contains("tiny.gguf")
            && e.contains(
                "`llama.attention.head_count` = 3 does not divide `llama.embedding_length` = 32"
            ),
        "{e}"
    );
    write_tiny_llama_gguf_with(
        &p,
        1,
        GgmlDType::F32,
        &[("llama.attention.head_count_kv", Value::U32(0))],
    )
    .unwrap();
    let e = load_err(&p);
    assert!(e.contains("`llama.attention.head_count_kv` is 0"), "{e}");
}
