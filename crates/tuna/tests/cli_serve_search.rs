//! `POST /v1/search` on `tuna serve --index NAME=INDEX`: the chunks, sources and scores equal
//! `tuna search`'s for the same query, the index may be left out when it is the only one, and
//! bad requests get OpenAI-shaped 4xx errors.

mod common;
use common::server::Server;
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

#[test]
fn search_answers_as_tuna_search_does() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("enc"), "bert", 3).unwrap();
    write_tiny_llama(&d.join("lm"), 4).unwrap();
    let mut add = vec![
        "index", "add", "--index", "i.db", "--model", "enc", "--json",
    ];
    for i in 0..DOCS {
        std::fs::write(d.join(format!("{i}.txt")), doc(i)).unwrap();
    }
    let files: Vec<String> = (0..DOCS).map(|i| format!("{i}.txt")).collect();
    add.extend(files.iter().map(String::as_str));
    ok(&tuna(d, &add));
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
