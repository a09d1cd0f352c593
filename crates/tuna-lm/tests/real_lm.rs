//! Parity with transformers on the real SmolLM2-135M GGUF (fetched by `scripts/fetch_models.sh`):
//! greedy generation, the chat template, and label log-likelihoods, against fixtures written by
//! `scripts/gen_fixtures.py`. Part of the suite: without the model they fail and say how to
//! fetch it.

use candle_core::Device;
use serde::Deserialize;
use std::path::PathBuf;
use tuna_lm::{Candidate, ChatTemplate, GenerateConfig, Generator, Message, Sampling, Scorer};
use tuna_models::{load_model, Model};

fn smollm2() -> Model {
    let dir = std::env::var_os("TUNA_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let path = dir.join("smollm2.gguf");
    assert!(
        path.exists(),
        "{} not found: run scripts/fetch_models.sh (or set TUNA_MODELS_DIR)",
        path.display()
    );
    load_model(&path, &Device::Cpu).unwrap()
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tuna-models/tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[derive(Deserialize)]
struct GenCase {
    prompt: String,
    ids: Vec<u32>,
    greedy: Vec<u32>,
    #[serde(default)]
    chat: Option<Vec<Message>>,
}

#[derive(Deserialize)]
struct GenFixture {
    max_new_tokens: usize,
    cases: Vec<GenCase>,
}

#[test]
fn greedy_generation_and_chat_template_match_transformers() {
    let m = smollm2();
    let f: GenFixture = fixture("smollm2_generate.json");
    let g = Generator::new(&m).unwrap();
    let cfg = GenerateConfig {
        max_new_tokens: f.max_new_tokens,
        sampling: Sampling::default(),
        stop_strings: vec![],
        stop_tokens: vec![],
    };
    let template = ChatTemplate::from_tokenizer(&m.tokenizer).unwrap();
    for case in &f.cases {
        let ids = match &case.chat {
            Some(chat) => {
                let rendered = template.render(chat, true).unwrap();
                assert_eq!(rendered, case.prompt, "chat template");
                m.tokenizer.encode_raw(&rendered).unwrap()
            }
            None => m.tokenizer.encode(&case.prompt, usize::MAX).unwrap(),
        };
        assert_eq!(ids, case.ids, "prompt ids of {:?}", case.prompt);
        let out = g.generate(&ids, &cfg, &mut |_| Ok(())).unwrap();
        assert_eq!(
            out.tokens, case.greedy,
            "greedy tokens after {:?}",
            case.prompt
        );
    }
    // The same prompts in one left-padded batch.
    let prompts: Vec<Vec<u32>> = f.cases.iter().map(|c| c.ids.clone()).collect();
    for (out, case) in g
        .generate_batch(&prompts, &cfg)
        .unwrap()
        .iter()
        .zip(&f.cases)
    {
        assert_eq!(
            out.tokens, case.greedy,
            "batched greedy tokens after {:?}",
            case.prompt
        );
    }
}

#[derive(Deserialize)]
struct ScoreCase {
    context: Vec<u32>,
    continuation: Vec<u32>,
    logprob: f64,
}

#[derive(Deserialize)]
struct ScoreFixture {
    cases: Vec<ScoreCase>,
}

#[test]
fn label_log_likelihoods_match_transformers() {
    let m = smollm2();
    let f: ScoreFixture = fixture("smollm2_scores.json");
    let items: Vec<Candidate> = f
        .cases
        .iter()
        .map(|c| Candidate {
            context: c.context.clone(),
            continuation: c.continuation.clone(),
        })
        .collect();
    let got = Scorer::new(&m).unwrap().score(&items).unwrap();
    for (c, ll) in f.cases.iter().zip(&got) {
        assert!(
            (ll.sum - c.logprob).abs() < 2e-3,
            "log-likelihood {} vs transformers {}",
            ll.sum,
            c.logprob
        );
    }
}
