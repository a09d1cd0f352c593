//! `tuna serve` on tiny models, driven over HTTP on 127.0.0.1: greedy answers equal
//! `tuna generate`'s token for token (base and adapter, plain and chat, whole and streamed),
//! embeddings, classification, errors in OpenAI's shape with the right status, the queue's
//! 429, the API key, a client that goes away, graceful shutdown, adapters loaded and removed at
//! run time (`/admin/adapters`); and the `openai` Python client
//! (scripts/check_openai_client.py) when `TUNA_TEST_PYTHONPATH` names where it is installed
//! (scripts/test.sh installs it with scripts/pydeps.sh).

mod common;
use common::data::{rlhf_setup, strong_quick_sft, write_sms};
use common::server::{chat_template, lm_setup, parse, send, Server};
use common::{ok, python_check, tuna};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use tuna_models::testing::{write_tiny_bert, write_tiny_llama};

/// `tuna generate --json` on one prompt, with `extra` flags.
fn generate(d: &Path, extra: &[&str], prompt: &str) -> Value {
    let mut args = vec!["generate", "-m", "lm", "--json", "-q"];
    args.extend(extra);
    args.push(prompt);
    ok(&tuna(d, &args))["generation"].clone()
}

/// Server answers to the same prompts as `tuna generate`, for `model`; the chat answer's tokens.
fn same_as_generate(s: &Server, d: &Path, model: &str, adapter: &[&str]) -> Value {
    let mut flags = adapter.to_vec();
    flags.extend(["--max-new-tokens", "8", "--ignore-eos"]);
    let want = generate(d, &flags, "the film");
    let r = s.post(
        "/v1/completions",
        &json!({"model": model, "prompt": "the film", "max_tokens": 8, "temperature": 0,
            "ignore_eos": true, "return_token_ids": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c = &r.json()["choices"][0];
    assert_eq!(c["token_ids"], want["tokens"], "{model}: {c}");
    assert_eq!(c["text"], want["text"]);
    assert_eq!(c["finish_reason"], "length");

    let mut flags = adapter.to_vec();
    flags.extend(["--chat", "--max-new-tokens", "10"]);
    let want = generate(d, &flags, "say hi twice");
    let msgs = json!([{"role": "user", "content": "say hi twice"}]);
    let body = json!({"model": model, "messages": msgs, "max_tokens": 10, "temperature": 0,
        "return_token_ids": true});
    let r = s.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["object"], "chat.completion");
    assert_eq!(j["choices"][0]["token_ids"], want["tokens"], "{model}: {j}");
    assert_eq!(j["choices"][0]["message"]["content"], want["text"]);
    assert_eq!(j["usage"]["prompt_tokens"], want["prompt_tokens"]);

    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = s.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let mut chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let usage = chunks.pop().unwrap();
    assert_eq!(usage["choices"], json!([]), "{usage}");
    assert_eq!(
        usage["usage"]["completion_tokens"].as_u64(),
        Some(want["tokens"].as_array().unwrap().len() as u64)
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, want["text"].as_str().unwrap());
    let last = &chunks[chunks.len() - 1]["choices"][0];
    assert!(last["finish_reason"].is_string(), "{last}");
    assert_eq!(last["token_ids"], want["tokens"]);
    want["tokens"].clone()
}

/// A quick SFT of the tiny Llama in `d` (from `rlhf_setup`) into `d/sft`, and the model's chat
/// template. One short epoch moves LoRA little: a large alpha makes the adapter's effect plain.
fn strong_sft(d: &Path) {
    strong_quick_sft(d);
    chat_template(d);
}

/// The token ids of a greedy 8-token completion of "the film" by `model`.
fn greedy_ids(s: &Server, model: &str) -> Value {
    let r = s.post(
        "/v1/completions",
        &json!({"model": model, "prompt": "the film", "max_tokens": 8, "temperature": 0,
            "ignore_eos": true, "return_token_ids": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["choices"][0]["token_ids"].clone()
}

#[test]
fn adapters_load_and_unload_at_run_time() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    strong_sft(d);
    let s = Server::start(d, &["-m", "lm"]);
    let list = || s.call("GET", "/admin/adapters", None, None).json()["data"].clone();
    assert_eq!(list(), json!([]));
    let load = |name: &str| s.post("/admin/adapters", &json!({"name": name, "path": "sft"}));
    let r = load("sft");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], "lm:sft");
    assert_eq!(error(&load("sft"), 409)["code"], "already_exists");
    assert_eq!(list()[0]["id"], "lm:sft");
    let models = s.call("GET", "/v1/models", None, None).json();
    assert_eq!(models["data"][1]["id"], "lm:sft");

    // Loaded at run time, it answers as `tuna generate --adapter` does.
    let base = same_as_generate(&s, d, "lm", &[]);
    let tuned = same_as_generate(&s, d, "lm:sft", &["--adapter", "sft"]);
    assert_ne!(base, tuned);
    let tuned_ids = greedy_ids(&s, "lm:sft");

    let r = s.call("DELETE", "/admin/adapters/sft", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["deleted"], true);
    assert_eq!(list(), json!([]));
    let gone = s.post(
        "/v1/completions",
        &json!({"model": "lm:sft", "prompt": "the film", "max_tokens": 2}),
    );
    assert_eq!(error(&gone, 404)["code"], "model_not_found");
    error(&s.call("DELETE", "/admin/adapters/sft", None, None), 404);

    // The base is untouched, and the adapter loads again under another name.
    assert_eq!(same_as_generate(&s, d, "lm", &[]), base);
    assert_eq!(load("again").status, 200);
    assert_eq!(greedy_ids(&s, "lm:again"), tuned_ids);
}

#[test]
fn greedy_answers_equal_tuna_generate_for_the_base_and_an_adapter() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    strong_sft(d);
    let s = Server::start(d, &["-m", "lm", "--adapter", "sft=sft"]);
    let models = s.call("GET", "/v1/models", None, None).json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lm", "lm:sft"]);
    let base = same_as_generate(&s, d, "lm", &[]);
    let tuned = same_as_generate(&s, d, "lm:sft", &["--adapter", "sft"]);
    // The adapter is applied (one model's answers do not stand for the other's).
    assert_ne!(base, tuned);

    // The `openai` package against the same server.
    for model in ["lm", "lm:sft"] {
        let url = format!("http://{}/v1", s.addr);
        let Some(said) = python_check("check_openai_client.py", &[&url, model], d) else {
            return;
        };
        assert!(said.contains("\"embedding_dims\""), "{said}");
    }
}

/// The error body of `r`, checked for OpenAI's shape and `status`.
fn error(r: &common::server::Reply, status: u16) -> Value {
    r.error(status)
}

#[test]
fn bad_requests_get_openai_errors_with_4xx() {
    let tmp = lm_setup();
    let s = Server::start(
        tmp.path(),
        &["-m", "lm", "--max-tokens", "16", "--max-body", "4096"],
    );
    let chat = |body: &str| s.call("POST", "/v1/chat/completions", Some(body), None);
    let msgs = r#"[{"role": "user", "content": "hi"}]"#;
    let e = error(
        &chat(&format!(r#"{{"model": "nope", "messages": {msgs}}}"#)),
        404,
    );
    assert_eq!(
        (e["code"].as_str(), e["param"].as_str()),
        (Some("model_not_found"), Some("model"))
    );
    assert_eq!(
        error(&chat(r#"{"model": "lm", "messages": "#), 400)["code"],
        "invalid_json"
    );
    let e = error(
        &chat(&format!(
            r#"{{"model": "lm", "messages": {msgs}, "temperature": "hot"}}"#
        )),
        400,
    );
    assert!(
        e["message"].as_str().unwrap().contains("invalid type"),
        "{e}"
    );
    let e = error(
        &chat(&format!(
            r#"{{"model": "lm", "messages": {msgs}, "max_tokens": 17}}"#
        )),
        400,
    );
    assert_eq!(e["param"], "max_tokens");
    let e = error(
        &chat(&format!(
            r#"{{"model": "lm", "messages": {msgs}, "temperature": 2.5}}"#
        )),
        400,
    );
    assert_eq!(e["param"], "temperature");
    assert_eq!(
        error(&chat(r#"{"model": "lm", "messages": []}"#), 400)["param"],
        "messages"
    );
    let big = format!(r#"{{"model": "lm", "prompt": "{}"}}"#, "a".repeat(8000));
    let e = error(&s.call("POST", "/v1/completions", Some(&big), None), 413);
    assert_eq!(e["code"], "request_too_large");
    error(&s.call("GET", "/v1/nothing", None, None), 404);
    error(&s.call("GET", "/v1/chat/completions", None, None), 405);
    let e = error(
        &s.post("/v1/embeddings", &json!({"model": "lm", "input": [1, 2]})),
        400,
    );
    assert_eq!(e["param"], "input");
    let e = error(
        &s.post("/v1/classify", &json!({"model": "lm", "input": "x"})),
        400,
    );
    assert_eq!(e["param"], "model");

    // The server is still up, and counted all of it.
    assert_eq!(s.call("GET", "/health", None, None).json()["status"], "ok");
    let m = s.call("GET", "/metrics", None, None).body;
    assert!(m.contains("tuna_errors_total{status=\"400\"} 7"), "{m}");
    assert!(m.contains("tuna_errors_total{status=\"404\"} 2"), "{m}");
    assert!(m.contains("tuna_errors_total{status=\"413\"} 1"), "{m}");
    assert!(m.contains("tuna_queue_depth 0"), "{m}");
}

#[test]
fn embeddings_come_as_floats_or_base64_as_tuna_embed_makes_them() {
    let tmp = lm_setup();
    let d = tmp.path();
    std::fs::write(d.join("texts.txt"), "the film\nhi there\n").unwrap();
    ok(&tuna(
        d,
        &[
            "embed",
            "-m",
            "lm",
            "-i",
            "texts.txt",
            "--format",
            "lines",
            "-o",
            "e.jsonl",
            "--no-cache",
            "--json",
            "-q",
        ],
    ));
    let want: Vec<Value> = std::fs::read_to_string(d.join("e.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["embedding"].clone())
        .collect();
    let s = Server::start(d, &["-m", "lm"]);
    let input = json!(["the film", "hi there"]);
    let r = s.post("/v1/embeddings", &json!({"model": "lm", "input": input}));
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["object"], "list");
    assert!(j["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let got: Vec<Vec<f32>> = (0..2)
        .map(|i| serde_json::from_value(j["data"][i]["embedding"].clone()).unwrap())
        .collect();
    let want: Vec<Vec<f32>> = want
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(got, want);
    let r = s.post(
        "/v1/embeddings",
        &json!({"model": "lm", "input": "the film", "encoding_format": "base64"}),
    );
    let b64 = r.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(b64.len(), (got[0].len() * 4).div_ceil(3) * 4);
}

/// Concurrent embedding requests (taken from the queue together and run as one batch) each
/// get their own rows and token counts: the numbers each gets alone.
#[test]
fn concurrent_embedding_requests_each_get_their_own_rows() {
    let tmp = lm_setup();
    let s = Server::start(tmp.path(), &["-m", "lm"]);
    let inputs: Vec<Value> = (0..6)
        .map(|i| {
            json!((0..=i % 3)
                .map(|j| format!("text {i} part {j} the film"))
                .collect::<Vec<_>>())
        })
        .collect();
    let embed = |input: &Value| {
        let r = s.post("/v1/embeddings", &json!({"model": "lm", "input": input}));
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        let rows: Vec<Vec<f32>> = j["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
            .collect();
        (rows, j["usage"]["prompt_tokens"].as_u64().unwrap())
    };
    let alone: Vec<_> = inputs.iter().map(&embed).collect();
    for _ in 0..3 {
        let together: Vec<_> = std::thread::scope(|sc| {
            let hs: Vec<_> = inputs.iter().map(|i| sc.spawn(|| embed(i))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for ((rows, tokens), (want_rows, want_tokens)) in together.iter().zip(&alone) {
            assert_eq!(tokens, want_tokens);
            assert_eq!(rows.len(), want_rows.len());
            for (a, b) in rows.iter().zip(want_rows) {
                let diff = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-4, "rows differ by {diff}");
            }
        }
    }
}

#[test]
fn a_classification_run_labels_texts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_sms(&d.join("sms.tsv"), 30);
    ok(&tuna(
        d,
        &[
            "train", "--method", "features", "--model", "model", "--data", "sms.tsv", "--out",
            "run", "--json", "-q",
        ],
    ));
    let want = ok(&tuna(
        d,
        &["predict", "--run", "run", "--json", "-q", "free prize now"],
    ));
    let s = Server::start(d, &["-m", "model", "--run", "spam=run"]);
    let r = s.post(
        "/v1/classify",
        &json!({"model": "spam", "input": ["free prize now"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    let p = &j["data"][0];
    assert_eq!(p["label"], want["predictions"][0]["label"]);
    let sum: f64 = p["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4, "{p}");
    // An encoder embeds but does not generate.
    let e = error(
        &s.post("/v1/completions", &json!({"model": "model", "prompt": "x"})),
        400,
    );
    assert_eq!(e["param"], "model");
    assert_eq!(
        s.post("/v1/embeddings", &json!({"model": "model", "input": "x"}))
            .status,
        200
    );
}

/// A streamed completion of 200 prompts of 100 tokens each, long enough to be stopped midway.
fn long_job() -> Value {
    json!({"model": "lm", "prompt": vec!["the film"; 200], "max_tokens": 100, "temperature": 0,
        "ignore_eos": true, "stream": true})
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let tmp = lm_setup();
    let s = Server::start(tmp.path(), &["-m", "lm", "--queue", "1"]);
    let body = long_job().to_string();
    // One runs, one waits; the rest find the queue full.
    let conns: Vec<_> = (0..6)
        .map(|_| {
            send(
                &s.addr,
                "POST",
                "/v1/completions",
                Some(body.as_bytes()),
                None,
            )
        })
        .collect();
    let replies: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut c, &mut raw).unwrap();
            parse(&raw)
        })
        .collect();
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 429));
    assert!(
        !busy.is_empty() && busy.len() < replies.len(),
        "{replies:?}"
    );
    assert_eq!(busy[0].header("retry-after"), Some("1"));
    assert_eq!(error(busy[0], 429)["code"], "queue_full");
}

#[test]
fn a_client_that_goes_away_stops_its_generation() {
    let tmp = lm_setup();
    let s = Server::start(tmp.path(), &["-m", "lm"]);
    let body = long_job().to_string();
    let conn = send(
        &s.addr,
        "POST",
        "/v1/completions",
        Some(body.as_bytes()),
        None,
    );
    let mut lines = BufReader::new(conn).lines();
    assert!(lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("data: {")));
    drop(lines);
    let start = std::time::Instant::now();
    loop {
        let m = s.call("GET", "/metrics", None, None).body;
        if m.contains("tuna_cancelled_total 1") && m.contains("tuna_running 0") {
            let tokens: u64 = m
                .lines()
                .find_map(|l| l.strip_prefix("tuna_generated_tokens_total "))
                .and_then(|v| v.parse().ok())
                .unwrap();
            assert!(tokens < 200 * 100, "{m}");
            break;
        }
        assert!(start.elapsed().as_secs() < 60, "not stopped: {m}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_api_key_is_required_when_set_and_off_loopback_and_a_busy_port_is_refused() {
    let tmp = lm_setup();
    let d = tmp.path();
    let s = Server::start(d, &["-m", "lm", "--api-key", "sesame"]);
    error(&s.call("GET", "/v1/models", None, None), 401);
    assert_eq!(
        error(&s.call("GET", "/v1/models", None, Some("nope")), 401)["code"],
        "invalid_api_key"
    );
    assert_eq!(
        s.call("GET", "/v1/models", None, Some("sesame")).status,
        200
    );
    assert_eq!(s.call("GET", "/health", None, None).status, 200);
    // A port in use is said at start.
    let port = s.addr.rsplit(':').next().unwrap();
    let out = tuna(d, &["serve", "-m", "lm", "--port", port]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot listen on"),
        "{err}"
    );
    drop(s);
    // Refused before anything is loaded or bound.
    let out = tuna(
        d,
        &["serve", "-m", "lm", "--host", "0.0.0.0", "--port", "0"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--api-key"), "{err}");
}

#[test]
fn sigterm_finishes_the_requests_in_flight() {
    let tmp = lm_setup();
    let mut s = Server::start(tmp.path(), &["-m", "lm"]);
    let mut job = long_job();
    job["stream"] = json!(false);
    job["prompt"] = json!(vec!["the film"; 8]);
    let body = job.to_string();
    let addr = s.addr.clone();
    let client = std::thread::spawn(move || {
        common::server::request(
            &addr,
            "POST",
            "/v1/completions",
            Some(body.as_bytes()),
            None,
        )
    });
    // Wait until the model runs it, then ask the server to stop.
    let start = std::time::Instant::now();
    let running = |m: &str| {
        m.lines()
            .any(|l| l.starts_with("tuna_running ") && l != "tuna_running 0")
    };
    while !running(&s.call("GET", "/metrics", None, None).body) {
        assert!(start.elapsed().as_secs() < 60);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let r = client.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"].as_array().unwrap().len(), 8);
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_request_past_the_time_limit_is_stopped_and_answered_504() {
    let tmp = lm_setup();
    let args = ["-m", "lm", "--timeout", "1", "--max-inputs", "4000"];
    let s = Server::start(tmp.path(), &args);
    let mut job = long_job();
    job["stream"] = json!(false);
    job["prompt"] = json!(vec!["the film"; 4000]);
    let start = std::time::Instant::now();
    let e = error(&s.post("/v1/completions", &job), 504);
    assert_eq!(e["code"], "timeout");
    assert!(start.elapsed().as_secs() < 30);
    // The model thread stopped that generation and answers the next request.
    let r = s.post(
        "/v1/completions",
        &json!({"model": "lm", "prompt": "a", "max_tokens": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let m = s.call("GET", "/metrics", None, None).body;
    assert!(m.contains("tuna_cancelled_total 1"), "{m}");
}

#[test]
fn a_model_without_a_chat_template_says_so_and_still_completes() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_llama(&tmp.path().join("lm"), 4).unwrap();
    let s = Server::start(tmp.path(), &["-m", "lm"]);
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let e = error(
        &s.post(
            "/v1/chat/completions",
            &json!({"model": "lm", "messages": msgs}),
        ),
        400,
    );
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("chat template") && m.contains("/v1/completions"),
        "{m}"
    );
    let r = s.post(
        "/v1/completions",
        &json!({"model": "lm", "prompt": "hi", "max_tokens": 3}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
