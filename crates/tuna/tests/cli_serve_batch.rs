//! `tuna serve` decodes concurrent generations together (continuous batching): greedy answers
//! to requests in flight at once, on the base model, a LoRA adapter and an IA3 adapter, of
//! different lengths, whole and streamed, equal `tuna generate`'s token for token; and the
//! decoding steps are fewer than one batch per model would take (rows of the three models
//! shared forward passes). An adapter removed
//! while a generation uses it goes once that generation is answered.

mod common;
use common::data::{quick_sft, rlhf_setup, strong_quick_sft, write_sms};
use common::server::{request, Server};
use common::{ok, tuna};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Barrier};

/// `tuna generate --json` greedy token ids of `prompt`, `n` tokens, with `extra` flags.
fn generate(d: &Path, extra: &[&str], prompt: &str, n: usize) -> Value {
    let n = n.to_string();
    let mut args = vec!["generate", "-m", "lm", "--json", "-q", "--ignore-eos"];
    args.extend(extra);
    args.extend(["--max-new-tokens", &n, prompt]);
    ok(&tuna(d, &args))["generation"]["tokens"].clone()
}

/// A LoRA adapter in `d/sft` (a large alpha makes its effect plain) and an IA3 one in `d/ia3`.
fn adapters(d: &Path) {
    strong_quick_sft(d);
    write_sms(&d.join("sms.tsv"), 30);
    let args = [
        "--json", "train", "--method", "ia3", "--out", "ia3", "--model", "lm", "--data", "sms.tsv",
        "--epochs", "1", "--lr", "0.3",
    ];
    let out = tuna(d, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The greedy token ids the server gives for `prompt` by `model`, `n` tokens, streamed or not.
fn served(addr: &str, model: &str, prompt: &str, n: usize, stream: bool) -> Value {
    let body = json!({"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0,
        "ignore_eos": true, "return_token_ids": true, "stream": stream});
    let r = request(
        addr,
        "POST",
        "/v1/completions",
        Some(body.to_string().as_bytes()),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    if !stream {
        return r.json()["choices"][0]["token_ids"].clone();
    }
    let events = r.events();
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    last["choices"][0]["token_ids"].clone()
}

#[test]
fn concurrent_greedy_answers_equal_tuna_generate() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    adapters(d);
    let cases: [(&str, &[&str], &str, usize, bool); 7] = [
        ("lm", &[], "the film", 60, false),
        ("lm:sft", &["--adapter", "sft"], "the film", 24, true),
        ("lm:ia3", &["--adapter", "ia3"], "say hi twice", 30, false),
        ("lm", &[], "in the", 5, true),
        ("lm:sft", &["--adapter", "sft"], "yes", 40, false),
        (
            "lm:ia3",
            &["--adapter", "ia3"],
            "the film was a long one",
            17,
            true,
        ),
        ("lm", &[], "say yes twice", 33, false),
    ];
    let want: Vec<Value> = cases
        .iter()
        .map(|(_, flags, prompt, n, _)| generate(d, flags, prompt, *n))
        .collect();
    let s = Server::start(
        d,
        &["-m", "lm", "--adapter", "sft=sft", "--adapter", "ia3=ia3"],
    );
    let go = Arc::new(Barrier::new(cases.len()));
    let threads: Vec<_> = cases
        .iter()
        .map(|&(model, _, prompt, n, stream)| {
            let (go, addr) = (go.clone(), s.addr.clone());
            std::thread::spawn(move || {
                go.wait();
                served(&addr, model, prompt, n, stream)
            })
        })
        .collect();
    let got: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "request {i} ({})", cases[i].0);
    }
    assert_ne!(want[0], want[1].clone(), "the adapters change the answers");
    let m = s.call("GET", "/metrics", None, None).body;
    let counter = |name: &str| -> u64 {
        let line = m.lines().find(|l| l.starts_with(name)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let tokens: usize = cases.iter().map(|c| c.3).sum();
    assert_eq!(counter("tuna_generated_tokens_total"), tokens as u64, "{m}");
    // Each row's first token comes from its prefill; the rest from shared steps: fewer than
    // the steps of one batch per model (its longest row's tokens but the first, summed).
    let longest = |model: &str| cases.iter().filter(|c| c.0 == model).map(|c| c.3 - 1).max();
    let apart: usize = ["lm", "lm:sft", "lm:ia3"]
        .iter()
        .filter_map(|m| longest(m))
        .sum();
    assert!(
        counter("tuna_decode_steps_total") < apart as u64,
        "rows of the base and its LoRA and IA3 adapters were not decoded together: {m}"
    );
}

#[test]
fn an_adapter_removed_under_a_generation_is_removed_once_it_is_answered() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    quick_sft(d);
    let s = Server::start(d, &["-m", "lm", "--adapter", "sft=sft"]);
    let addr = s.addr.clone();
    let generation = std::thread::spawn(move || served(&addr, "lm:sft", "the film", 120, true));
    let running = |m: &str| {
        m.lines()
            .any(|l| l.starts_with("tuna_running ") && l != "tuna_running 0")
    };
    while !generation.is_finished() && !running(&s.call("GET", "/metrics", None, None).body) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let r = s.call("DELETE", "/admin/adapters/sft", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["deleted"], true);
    let ids = generation.join().unwrap();
    assert_eq!(ids.as_array().map(Vec::len), Some(120), "{ids}");
    let gone = s.post(
        "/v1/completions",
        &json!({"model": "lm:sft", "prompt": "the film", "max_tokens": 2}),
    );
    assert_eq!(gone.status, 404, "{}", gone.body);
}
