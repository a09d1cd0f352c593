//! `tuna index`, `search` and `ask` on tiny random models: the whole workflow, unchanged and
//! changed documents, deletion, evaluation, clear errors, and a kill during `index add` that
//! leaves every document fully in or fully out. Runs on SQLite, and on PostgreSQL too when
//! `TUNA_TEST_POSTGRES` names a server (scripts/test.sh starts one).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tuna_models::testing::{write_tiny_bert, write_tiny_llama, TINY_WORDS};

mod common;
use common::{last_json, ok, tuna};

/// Index names to test in `dir`: a SQLite file, and a fresh PostgreSQL index when available.
fn indexes(dir: &Path, name: &str) -> Vec<String> {
    let mut out = vec![dir.join(format!("{name}.db")).display().to_string()];
    if let Ok(url) = std::env::var("TUNA_TEST_POSTGRES") {
        if !url.is_empty() {
            let index = format!("cli_{name}");
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.batch_execute(&format!(
                "DROP TABLE IF EXISTS tuna_{index}_chunks, tuna_{index}_docs, tuna_{index}_meta"
            ))
            .unwrap();
            out.push(format!("{url}#{index}"));
        }
    }
    out
}

/// A sentence of tiny-vocabulary words, different for each `i`.
fn sentence(i: usize, len: usize) -> String {
    (0..len)
        .map(|j| TINY_WORDS[(i * 7 + j * 3 + i / 5) % 32])
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn add_search_update_remove_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("enc"), "bert", 3).unwrap();
    std::fs::create_dir_all(d.join("docs/more")).unwrap();
    std::fs::write(d.join("docs/a.txt"), sentence(1, 30)).unwrap();
    std::fs::write(
        d.join("docs/b.md"),
        format!("# good film\n\n{}\n\n{}", sentence(2, 12), sentence(3, 12)),
    )
    .unwrap();
    let jsonl: String = (0..5)
        .map(|i| {
            format!(
                "{{\"id\": \"r{i}\", \"text\": \"{}\"}}\n",
                sentence(10 + i, 9)
            )
        })
        .collect();
    std::fs::write(d.join("docs/more/c.jsonl"), jsonl).unwrap();
    std::fs::write(
        d.join("q.jsonl"),
        format!(
            "{{\"question\": \"{}\", \"relevant\": [\"c.jsonl#r2\"], \"answers\": [\"x\"]}}\n\
             {{\"question\": \"{}\", \"relevant\": [\"docs/a.txt\"]}}\n",
            sentence(12, 9),
            sentence(1, 16)
        ),
    )
    .unwrap();

    for index in indexes(d, "flow") {
        let add = |extra: &[&str]| {
            let mut a = vec!["index", "add", "--index", index.as_str(), "--json"];
            a.extend_from_slice(extra);
            tuna(d, &a)
        };
        let r = ok(&add(&[
            "--model",
            "enc",
            "--chunk-size",
            "16",
            "--overlap",
            "4",
            "docs",
        ]));
        assert_eq!(r["report"]["added"], 7, "{index}: {r}");
        let chunks = r["stats"]["chunks"].as_u64().unwrap();
        assert!(chunks > 7, "long documents are cut: {r}");
        assert_eq!(r["stats"]["incomplete_documents"], 0);

        // Unchanged: no work; the encoder comes from the index.
        let r = ok(&add(&["docs"]));
        assert_eq!(r["report"]["unchanged"], 7, "{r}");
        assert_eq!(r["report"]["chunks"], 0);

        // A changed file replaces its chunks.
        std::fs::write(d.join("docs/a.txt"), sentence(4, 5)).unwrap();
        let r = ok(&add(&["docs"]));
        assert_eq!(r["report"]["updated"], 1, "{r}");
        assert!(r["stats"]["chunks"].as_u64().unwrap() < chunks);
        std::fs::write(d.join("docs/a.txt"), sentence(1, 30)).unwrap();
        ok(&add(&["docs"]));

        let s = ok(&tuna(
            d,
            &[
                "search",
                "--index",
                &index,
                &sentence(12, 9),
                "-k",
                "3",
                "--json",
            ],
        ));
        let hits = s["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0]["source"], "docs/more/c.jsonl#r2", "{s}");
        assert!(hits[0]["score"].as_f64().unwrap() > 0.99);

        let e = ok(&tuna(
            d,
            &[
                "index",
                "eval",
                "--index",
                &index,
                "--questions",
                "q.jsonl",
                "--json",
            ],
        ));
        assert_eq!(e["retrieval"]["questions"], 2, "{e}");
        assert_eq!(e["retrieval"]["recall_at_1"], 1.0, "{e}");
        assert_eq!(e["retrieval"]["mrr"], 1.0);

        let r = ok(&tuna(
            d,
            &["index", "rm", "--index", &index, "docs/more", "--json"],
        ));
        assert_eq!(r["removed"], 5, "{r}");
        let st = ok(&tuna(d, &["index", "stats", "--index", &index, "--json"]));
        assert_eq!(st["stats"]["documents"], 2, "{st}");
        assert_eq!(st["meta"]["chunking"]["size"], 16);
    }
}

#[test]
fn ask_answers_from_sources_and_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("enc"), "bert", 3).unwrap();
    write_tiny_llama(&d.join("lm"), 4).unwrap();
    std::fs::write(d.join("a.txt"), sentence(1, 3)).unwrap();
    std::fs::write(d.join("b.txt"), sentence(2, 3)).unwrap();
    let index = d.join("i.db").display().to_string();
    ok(&tuna(
        d,
        &[
            "index", "add", "--index", &index, "--model", "enc", "a.txt", "b.txt", "--json",
        ],
    ));
    let ask = |extra: &[&str]| {
        let mut args = vec!["ask", "--index", &index, "--model", "lm", "--no-chat"];
        args.extend_from_slice(&["--instruction", "x", "--json"]);
        args.extend_from_slice(extra);
        ok(&tuna(d, &args))
    };
    let question = sentence(1, 3);
    let a = ask(&["-k", "2", "--max-new-tokens", "5", &question]);
    let sources = a["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{a}");
    assert_eq!(sources[0]["source"], "a.txt");
    assert!(a["new_tokens"].as_u64().unwrap() <= 5);
    let both = a["prompt_tokens"].as_u64().unwrap();

    // A budget too small for both sources keeps only the best.
    let budget = (both - 20).to_string();
    let a = ask(&[
        "--context-tokens",
        &budget,
        "--max-new-tokens",
        "2",
        &question,
    ]);
    assert_eq!(a["sources"].as_array().unwrap().len(), 1, "{a}");
    assert!(a["prompt_tokens"].as_u64().unwrap() < both);
}

#[test]
fn clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("enc"), "bert", 3).unwrap();
    write_tiny_bert(&d.join("other"), "bert", 9).unwrap();
    std::fs::write(d.join("a.txt"), sentence(1, 10)).unwrap();
    let index = d.join("i.db").display().to_string();
    let err = |args: &[&str]| {
        let out = tuna(d, args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(err(&["index", "add", "--index", &index, "a.txt"]).contains("--model"));
    assert!(err(&["search", "--index", &index, "x"]).contains("is empty"));
    ok(&tuna(
        d,
        &[
            "index", "add", "--index", &index, "--model", "enc", "a.txt", "--json",
        ],
    ));
    let e = err(&[
        "index", "add", "--index", &index, "--model", "other", "a.txt",
    ]);
    assert!(e.contains("rebuild the index"), "{e}");
    assert!(err(&["index", "add", "--index", &index, "missing.txt"]).contains("missing.txt"));
    assert!(err(&["index", "add", "--index", "mysql://x", "a.txt"]).contains("postgres://"));
}

/// Kills `tuna index add` once some documents are committed; the index must hold whole
/// documents only, and a second run must finish the job without redoing them.
#[test]
fn a_killed_add_leaves_whole_documents_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("enc"), "bert", 3).unwrap();
    let n = 6000;
    let lines: String = (0..n)
        .map(|i| format!("{{\"id\": {i}, \"text\": \"{}\"}}\n", sentence(i, 40)))
        .collect();
    std::fs::write(d.join("many.jsonl"), lines).unwrap();
    for index in indexes(d, "kill") {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tuna"))
            .args([
                "index",
                "add",
                "--index",
                &index,
                "--model",
                "enc",
                "many.jsonl",
            ])
            .args(["--chunk-size", "16", "--overlap", "4", "--quiet"])
            .current_dir(d)
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut committed = 0;
        while committed == 0 && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(100));
            let st = tuna(d, &["index", "stats", "--index", &index, "--json"]);
            if st.status.success() {
                committed = last_json(&st)["stats"]["documents"].as_u64().unwrap_or(0);
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(committed > 0, "{index}: nothing committed within 120 s");
        let st = ok(&tuna(d, &["index", "stats", "--index", &index, "--json"]));
        let docs = st["stats"]["documents"].as_u64().unwrap();
        assert!(
            docs < n as u64,
            "{index}: killed before the end ({docs} of {n})"
        );
        assert_eq!(st["stats"]["incomplete_documents"], 0, "{st}");
        assert_eq!(st["stats"]["vectors"], st["stats"]["chunks"], "{st}");

        let r = ok(&tuna(
            d,
            &["index", "add", "--index", &index, "many.jsonl", "--json"],
        ));
        assert_eq!(r["report"]["unchanged"].as_u64().unwrap(), docs, "{r}");
        assert_eq!(r["stats"]["documents"], n, "{r}");
        assert_eq!(r["stats"]["incomplete_documents"], 0);
    }
}

/// Two `tuna index add` of the same documents into one index at the same time: the second
/// waits for the first, then finds every document indexed and writes nothing.
#[test]
fn concurrent_adds_take_turns_and_the_second_skips_the_firsts_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("enc"), "bert", 3).unwrap();
    let n: u64 = 300;
    let lines: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"text\": \"{}\"}}\n",
                sentence(i as usize, 40)
            )
        })
        .collect();
    std::fs::write(d.join("many.jsonl"), lines).unwrap();
    for index in indexes(d, "concurrent") {
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_tuna"))
                .args(["index", "add", "--index", &index, "--model", "enc"])
                .args([
                    "many.jsonl",
                    "--chunk-size",
                    "16",
                    "--overlap",
                    "4",
                    "--json",
                ])
                .current_dir(d)
                .env("RAYON_NUM_THREADS", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let (ja, jb) = (ok(&a), ok(&b));
        let added = |j: &serde_json::Value| j["report"]["added"].as_u64().unwrap();
        // Before the writer lock both said "added 300" and the file grew by the second copy.
        assert_eq!(added(&ja) + added(&jb), n, "{index}: {ja} {jb}");
        let (first, second, second_out) = if added(&ja) == n {
            (ja, jb, b)
        } else {
            (jb, ja, a)
        };
        assert_eq!(second["report"]["unchanged"], n, "{second}");
        assert_eq!(second["report"]["chunks"], 0, "{second}");
        assert_eq!(second["stats"]["chunks"], first["report"]["chunks"]);
        assert_eq!(second["stats"]["incomplete_documents"], 0);
        let said = String::from_utf8_lossy(&second_out.stdout);
        assert!(said.contains("waiting for it to finish"), "{said}");
    }
}
