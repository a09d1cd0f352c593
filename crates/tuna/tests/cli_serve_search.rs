//! `POST /v1/search` on `tuna serve --index NAME=INDEX`: the chunks, sources and scores equal
//! `tuna search`'s for the same query, the index may be left out when it is the only one, and
//! bad requests get OpenAI-shaped 4xx errors; a chat request that names the index is answered
//! from its sources as `tuna ask` answers, whole and streamed.

mod common;
use common::server::{chat_template, Server};
use common::{ok, tuna};
use serde_json::{json, Value};
use tuna_models::testing::{write_tiny_bert, write_tiny_llama, TINY_WORDS};

/// Documents in the tiny vocabulary, different for each `i`.
fn doc(i: usize) -> String {
    (0..8)
        .map(|j| TINY_WORDS[(i * 7 + j * 3 + i / 5) % 32])
        .collect::<Vec<_>>()
        .join(" ")
}

const DOCS: usize = 3;

/// A temp dir with an encoder `enc`, a chat model `lm` and the index `i.db` of [`DOCS`] docs.
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("enc"), "bert", 3).unwrap();
    write_tiny_llama(&d.join("lm"), 4).unwrap();
    chat_template(d);
    let mut add = vec![
        "index", "add", "--index", "i.db", "--model", "enc", "--json",
    ];
    for i in 0..DOCS {
        std::fs::write(d.join(format!("{i}.txt")), doc(i)).unwrap();
    }
    let files: Vec<String> = (0..DOCS).map(|i| format!("{i}.txt")).collect();
    add.extend(files.iter().map(String::as_str));
    ok(&tuna(d, &add));
    tmp
}

#[test]
fn search_answers_as_tuna_search_does() {
    let tmp = setup();
    let d = tmp.path();
    let query = &doc(0);
    let want = ok(&tuna(
        d,
        &["search", "--index", "i.db", "-k", "2", "--json", query],
    ))["hits"]
        .clone();

    let s = Server::start(d, &["-m", "lm", "--index", "docs=i.db"]);
    let search = |body: Value| s.post("/v1/search", &body);
    let r = search(json!({"index": "docs", "query": query, "top_k": 2}));
    assert_eq!(r.status, 200, "{}", r.body);
    let got = r.json();
    assert_eq!(got["object"], "list");
    let data = got["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (g, w) in data.iter().zip(want.as_array().unwrap()) {
        assert_eq!(g["source"], w["source"]);
        assert_eq!(g["chunk"], w["seq"]);
        assert_eq!(g["text"], w["text"]);
        let (a, b) = (g["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5, "{g} vs {w}");
    }
    assert_eq!(data[0]["source"], "0.txt");
    // The only index may be left out; top_k defaults to 5 (all three chunks here).
    let r = search(json!({"query": query}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), DOCS);

    let e = search(json!({"index": "nope", "query": query})).error(404);
    assert_eq!(
        (e["code"].as_str(), e["param"].as_str()),
        (Some("index_not_found"), Some("index"))
    );
    for (body, param) in [
        (json!({"query": query, "top_k": 0}), "top_k"),
        (json!({"query": query, "top_k": 1000}), "top_k"),
        (json!({"query": "  "}), "query"),
        (json!({"index": "docs"}), "query"),
        (json!({"query": 5}), "query"),
    ] {
        let e = search(body.clone()).error(400);
        assert_eq!(e["param"], param, "{body}: {e}");
    }
    // The server still answers.
    assert_eq!(search(json!({"query": query, "top_k": 1})).status, 200);
}

#[test]
fn an_empty_or_missing_index_stops_the_server_from_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_llama(&d.join("lm"), 4).unwrap();
    let out = tuna(
        d,
        &[
            "serve",
            "-m",
            "lm",
            "--index",
            "docs=empty.db",
            "--port",
            "0",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--index docs=empty.db") && err.contains("empty"),
        "{err}"
    );
    let out = tuna(
        d,
        &["serve", "-m", "lm", "--index", "nameless", "--port", "0"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=INDEX"));
}

#[test]
fn chat_with_an_index_answers_from_its_sources_as_tuna_ask_does() {
    let tmp = setup();
    let d = tmp.path();
    // Short: the tiny vocabulary spells the chat template and the prompt's words in pieces.
    let q: String = doc(1).split(' ').take(2).collect::<Vec<_>>().join(" ");
    let args = [
        "ask",
        "--index",
        "i.db",
        "--model",
        "lm",
        "-k",
        "2",
        "--max-new-tokens",
        "8",
        "--context-tokens",
        "60",
        "--instruction",
        "x",
        "--json",
    ];
    let mut args = args.to_vec();
    args.push(&q);
    let want = ok(&tuna(d, &args));
    let s = Server::start(d, &["-m", "lm", "--index", "docs=i.db"]);
    let mut body = json!({"model": "lm", "messages": [{"role": "user", "content": q}],
        "index": "docs", "top_k": 2, "context_tokens": 60, "instruction": "x", "max_tokens": 8,
        "temperature": 0});
    let r = s.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let got = r.json();
    let text = got["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text.trim(), want["answer"].as_str().unwrap());
    assert_eq!(got["usage"]["prompt_tokens"], want["prompt_tokens"]);
    let (g, w) = (
        got["sources"].as_array().unwrap(),
        want["sources"].as_array().unwrap(),
    );
    assert_eq!(g.len(), w.len());
    assert!(!g.is_empty());
    for (g, w) in g.iter().zip(w) {
        assert_eq!((&g["source"], &g["chunk"]), (&w["source"], &w["seq"]));
    }
    // Streamed: the first chunk carries the sources.
    body["stream"] = json!(true);
    let r = s.post("/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let first: Value = serde_json::from_str(first).unwrap();
    assert_eq!(first["sources"].as_array().unwrap().len(), w.len());
    // An unknown index, a wrong type.
    body["stream"] = json!(false);
    body["index"] = json!("nope");
    let e = s.post("/v1/chat/completions", &body).error(404);
    assert_eq!(e["param"], "index");
    body["index"] = json!(5);
    assert_eq!(
        s.post("/v1/chat/completions", &body).error(400)["param"],
        "index"
    );
}
