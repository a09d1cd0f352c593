//! Parity with Hugging Face on the real checkpoints (fetched by `scripts/fetch_models.sh`):
//! golden fixtures written by `scripts/gen_fixtures.py` with transformers / sentence-transformers.
//!
//! These tests are part of the suite: without the models they fail and say how to fetch them.

use candle_core::{Device, Tensor, D};
use serde::Deserialize;
use std::path::PathBuf;
use tuna_models::{load_model, Model};
use tuna_nn::Pooling;

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("TUNA_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    assert!(
        dir.join("minilm").exists() && dir.join("smollm2.gguf").exists(),
        "real models not found in {}: run scripts/fetch_models.sh (or set TUNA_MODELS_DIR)",
        dir.display()
    );
    dir
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[derive(Deserialize)]
struct MiniLmFixture {
    sentences: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

#[test]
fn minilm_matches_sentence_transformers() {
    let f: MiniLmFixture = fixture("minilm_embeddings.json");
    let m = load_model(&models_dir().join("minilm"), &Device::Cpu).unwrap();
    for (s, ids) in f.sentences.iter().zip(&f.input_ids) {
        assert_eq!(
            &m.tokenizer.encode(s, 256).unwrap(),
            ids,
            "token ids of {s:?}"
        );
    }
    let texts: Vec<&str> = f.sentences.iter().map(String::as_str).collect();
    let got: Vec<Vec<f32>> = m
        .embed_texts(&texts, Pooling::Mean, 256)
        .unwrap()
        .to_vec2()
        .unwrap();
    for ((s, a), b) in f.sentences.iter().zip(&got).zip(&f.embeddings) {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = dot / (na * nb);
        assert!(cos >= 0.9999, "cosine {cos} for {s:?}");
    }
}

#[derive(Deserialize)]
struct LogitsFixture {
    ids: Vec<u32>,
    text: String,
    logsumexp: Vec<f64>,
    argmax: Vec<u32>,
    columns: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

fn smollm2() -> Model {
    load_model(&models_dir().join("smollm2.gguf"), &Device::Cpu).unwrap()
}

fn all_logits(m: &tuna_models::Model, ids: &[u32]) -> Tensor {
    m.logits(ids).unwrap()
}

#[test]
fn smollm2_gguf_logits_match_transformers() {
    let f: LogitsFixture = fixture("smollm2_logits.json");
    let m = smollm2();
    assert_eq!(
        m.tokenizer.encode(&f.text, 8192).unwrap(),
        f.ids,
        "token ids"
    );
    let logits = all_logits(&m, &f.ids);
    let lse: Vec<f32> = logits.log_sum_exp(D::Minus1).unwrap().to_vec1().unwrap();
    let argmax: Vec<u32> = logits.argmax(D::Minus1).unwrap().to_vec1().unwrap();
    let cols = Tensor::new(f.columns.as_slice(), &Device::Cpu).unwrap();
    let picked: Vec<Vec<f32>> = logits.index_select(&cols, 1).unwrap().to_vec2().unwrap();
    let mut worst = (0f32, 0usize, 0usize);
    for (pos, (got, want)) in picked.iter().zip(&f.logits).enumerate() {
        let scale = want.iter().fold(0f32, |a, x| a.max(x.abs()));
        for (j, (a, b)) in got.iter().zip(want).enumerate() {
            let rel = (a - b).abs() / scale;
            if rel > worst.0 {
                worst = (rel, pos, j);
            }
        }
        let lse_rel = (lse[pos] as f64 - f.logsumexp[pos]).abs() / f.logsumexp[pos].abs().max(1.0);
        assert!(
            lse_rel < 1e-3,
            "position {pos}: logsumexp {} vs {}",
            lse[pos],
            f.logsumexp[pos]
        );
    }
    let (rel, pos, j) = worst;
    assert!(
        rel < 1e-3,
        "worst relative logit error {rel} at position {pos}, vocab column {} ({} vs {})",
        f.columns[j],
        picked[pos][j],
        f.logits[pos][j]
    );
    assert_eq!(argmax, f.argmax, "argmax per position");
}

#[derive(Deserialize)]
struct PerplexityFixture {
    text: String,
    ids: Vec<u32>,
    perplexity: f64,
}

#[test]
fn smollm2_perplexity_matches_transformers() {
    let f: PerplexityFixture = fixture("smollm2_perplexity.json");
    let m = smollm2();
    assert_eq!(
        m.tokenizer.encode(&f.text, 8192).unwrap(),
        f.ids,
        "token ids"
    );
    let logits = all_logits(&m, &f.ids);
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let logp: Vec<Vec<f32>> = logp.to_vec2().unwrap();
    let nll: f64 = (1..f.ids.len())
        .map(|i| -(logp[i - 1][f.ids[i] as usize] as f64))
        .sum::<f64>()
        / (f.ids.len() - 1) as f64;
    let ppl = nll.exp();
    let rel = (ppl - f.perplexity).abs() / f.perplexity;
    assert!(
        rel < 0.01,
        "perplexity {ppl} vs transformers {}",
        f.perplexity
    );
}

#[derive(Deserialize)]
struct TokenCase {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct TokensFixture {
    cases: Vec<TokenCase>,
}

#[test]
fn smollm2_tokenizer_matches_transformers() {
    let f: TokensFixture = fixture("smollm2_tokens.json");
    let m = smollm2();
    for c in &f.cases {
        assert_eq!(
            m.tokenizer.encode_raw(&c.text).unwrap(),
            c.ids,
            "{:?}",
            c.text
        );
    }
    assert!(m
        .tokenizer
        .chat_template
        .as_deref()
        .unwrap_or("")
        .contains("im_start"));
    assert_eq!(m.tokenizer.eos_id, Some(2));
}
