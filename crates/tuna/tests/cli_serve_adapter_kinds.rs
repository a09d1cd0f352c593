//! Every adapter kind on a causal LM, served per request: runs of each method on a tiny Llama
//! (LoRA, DoRA, IA3, bottleneck adapters, prefix tuning, soft prompt tuning) are attached
//! unmerged to one `tuna serve`, and each one's greedy completion equals `tuna generate
//! --adapter RUN` token for token and differs from the base's, alone and with requests for all
//! the others in flight (the kinds that mix decoding in one batch with the base).

mod common;
use common::data::write_sms;
use common::server::{lm_setup, request, Server};
use common::{ok, tuna};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Barrier};

const METHODS: [&str; 6] = ["lora", "dora", "ia3", "adapter", "prefix", "prompt"];

/// A short classification run of `method` on the tiny Llama, its adapter kept in `RUN/adapter`.
fn train(d: &Path, method: &str) {
    let args = [
        "--json",
        "-q",
        "train",
        "--method",
        method,
        "--out",
        method,
        "--model",
        "lm",
        "--data",
        "sms.tsv",
        "--epochs",
        "1",
        "--lr",
        "0.05",
        "--virtual-tokens",
        "4",
    ];
    let args: Vec<&str> = match method {
        "prefix" | "prompt" => args.to_vec(),
        _ => args[..args.len() - 2].to_vec(),
    };
    let j = ok(&tuna(d, &args));
    assert_eq!(j["ok"], true, "{method}: {j}");
}

/// `tuna generate`'s greedy tokens for "the film", with `extra` flags.
fn generated(d: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["generate", "-m", "lm", "--json", "-q"];
    args.extend(extra);
    args.extend(["--max-new-tokens", "8", "--ignore-eos", "the film"]);
    ok(&tuna(d, &args))["generation"]["tokens"].clone()
}

/// The server's greedy tokens for the same completion by `model`.
fn served(s: &Server, model: &str) -> Value {
    served_at(&s.addr, model)
}

fn served_at(addr: &str, model: &str) -> Value {
    let body = json!({"model": model, "prompt": "the film", "max_tokens": 8, "temperature": 0,
        "ignore_eos": true, "return_token_ids": true});
    let r = request(
        addr,
        "POST",
        "/v1/completions",
        Some(body.to_string().as_bytes()),
        None,
    );
    assert_eq!(r.status, 200, "{model}: {}", r.body);
    r.json()["choices"][0]["token_ids"].clone()
}

#[test]
fn every_adapter_kind_is_served_per_request_as_tuna_generate_runs_it() {
    let tmp = lm_setup();
    let d = tmp.path();
    write_sms(&d.join("sms.tsv"), 24);
    let mut flags = vec!["-m".to_string(), "lm".to_string()];
    for m in METHODS {
        train(d, m);
        flags.extend(["--adapter".to_string(), format!("{m}={m}")]);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Server::start(d, &flags);
    let base = served(&s, "lm");
    assert_eq!(base, generated(d, &[]));
    let mut wants = Vec::new();
    for m in METHODS {
        let want = generated(d, &["--adapter", m]);
        assert_eq!(served(&s, &format!("lm:{m}")), want, "{m}");
        if m == "prefix" || m == "prompt" {
            // Random virtual tokens change the continuation (the others barely train here).
            assert_ne!(want, base, "{m}: the adapter changes nothing");
        }
        wants.push(want);
    }
    // All at once, twice each: the base and the kinds that mix decode in one batch, each row
    // by its own adapter, and every answer is still the one it gets alone.
    let models: Vec<String> = std::iter::once("lm".to_string())
        .chain(METHODS.iter().map(|m| format!("lm:{m}")))
        .flat_map(|m| [m.clone(), m])
        .collect();
    let go = Arc::new(Barrier::new(models.len()));
    let threads: Vec<_> = models
        .iter()
        .map(|model| {
            let (go, addr, model) = (go.clone(), s.addr.clone(), model.clone());
            std::thread::spawn(move || {
                go.wait();
                served_at(&addr, &model)
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let want = if i < 2 { &base } else { &wants[i / 2 - 1] };
        assert_eq!(&t.join().unwrap(), want, "{} among the others", models[i]);
    }
}
