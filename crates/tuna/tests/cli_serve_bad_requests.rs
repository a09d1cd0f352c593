//! Every bad request of the committed list (tests/fixtures/serve_bad_requests.json) sent to one
//! `tuna serve` on a tiny model: each gets its documented status and OpenAI error (`type`,
//! `code`, `param`), and a good request succeeds after each, so the server keeps serving. The
//! table in docs/SERVE.md is rendered from the same file; a test checks that it is up to date
//! (`TUNA_BLESS=1` rewrites it).

mod common;
use common::server::{lm_setup, parse, read_reply, send_raw, Reply, Server};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// The API key the fixture's server is started with.
const KEY: &str = "sesame";
const BEGIN: &str = "<!-- bad-requests:begin (rendered from crates/tuna/tests/fixtures/serve_bad_requests.json) -->";
const END: &str = "<!-- bad-requests:end -->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture() -> Value {
    let path = root().join("crates/tuna/tests/fixtures/serve_bad_requests.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The body of a case: `raw` as is, or `body` with its `fill` applied, as JSON.
fn body(case: &Value) -> Option<Vec<u8>> {
    if let Some(raw) = case["raw"].as_str() {
        return Some(raw.as_bytes().to_vec());
    }
    let mut body = case.get("body")?.clone();
    if let Some(fill) = case.get("fill") {
        let text = fill["text"].as_str().unwrap();
        let times = fill["times"].as_u64().unwrap() as usize;
        let pointer = fill["pointer"].as_str().unwrap();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let holder = body.pointer_mut(parent).expect("fill's parent exists");
        let value = Value::String(text.repeat(times));
        match holder {
            Value::Array(a) => a[field.parse::<usize>().unwrap()] = value,
            other => other[field] = value,
        }
    }
    Some(body.to_string().into_bytes())
}

/// The headers of a case: the API key (per `key`) and a JSON content type when there is a body,
/// each replaced by a header of the same name in `headers`.
fn headers(case: &Value, has_body: bool) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = vec![];
    match case["key"].as_str() {
        Some("none") => {}
        Some("wrong") => h.push(("Authorization".into(), "Bearer wrong".into())),
        _ => h.push(("Authorization".into(), format!("Bearer {KEY}"))),
    }
    if has_body {
        h.push(("Content-Type".into(), "application/json".into()));
    }
    if let Some(extra) = case["headers"].as_object() {
        for (name, value) in extra {
            h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            h.push((name.clone(), value.as_str().unwrap().to_string()));
        }
    }
    h
}

/// Sends a case; for `disconnect`, reads the status and the first event, then hangs up.
fn send_case(addr: &str, case: &Value) -> Reply {
    let body = body(case);
    let conn = send_raw(
        addr,
        case["method"].as_str().unwrap(),
        case["path"].as_str().unwrap(),
        &headers(case, body.is_some()),
        body.as_deref(),
    );
    if !case["disconnect"].as_bool().unwrap_or(false) {
        return read_reply(conn);
    }
    let mut head = Vec::new();
    let mut lines = BufReader::new(conn);
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap() > 0 {
        head.extend_from_slice(line.as_bytes());
        if line.starts_with("data: {") {
            break;
        }
        line.clear();
    }
    // Dropping the reader closes the connection mid-stream.
    let text = String::from_utf8_lossy(&head).into_owned();
    assert!(
        text.contains("data: {"),
        "no event before the hang-up: {text}"
    );
    let head_end = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
    parse(&text.as_bytes()[..head_end])
}

/// Checks a case's answer against its documented status, `type`, `code` and `param`.
fn check(case: &Value, r: &Reply) {
    let name = case["name"].as_str().unwrap();
    let status = case["status"].as_u64().unwrap() as u16;
    assert_eq!(r.status, status, "{name}: {}", r.body);
    if status < 400 {
        return;
    }
    let e = r.error(status);
    assert_eq!(e["type"], case["type"], "{name}: {e}");
    assert_eq!(e["code"], case["code"], "{name}: {e}");
    if let Some(param) = case.get("param") {
        assert_eq!(&e["param"], param, "{name}: {e}");
    }
}

#[test]
fn every_bad_request_gets_its_documented_answer_and_the_server_keeps_serving() {
    let fx = fixture();
    let tmp = lm_setup();
    // A folder named as the adapter cases name it (it holds none).
    std::fs::create_dir(tmp.path().join("sft")).unwrap();
    let args: Vec<&str> = fx["server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut all = vec!["-m", "lm"];
    all.extend(args);
    let s = Server::start(tmp.path(), &all);
    let good = &fx["good"];
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 24, "the list has {} cases", cases.len());
    for case in cases {
        let r = send_case(&s.addr, case);
        check(case, &r);
        let ok = send_case(&s.addr, good);
        let name = case["name"].as_str().unwrap();
        assert_eq!(ok.status, 200, "after {name}: {}", ok.body);
        assert_eq!(ok.json()["object"], "text_completion");
    }
    // Every bad answer was counted, none as a server error.
    let m = s.call("GET", "/metrics", None, Some(KEY)).body;
    assert!(!m.contains("status=\"5"), "{m}");
}

/// The table of docs/SERVE.md, rendered from the fixture.
fn table(fx: &Value) -> String {
    let mut t = String::from(
        "| # | request | sent to | status | `type` | `code` | `param` |\n|---:|---|---|---:|---|---|---|\n",
    );
    let cell = |v: &Value| match v.as_str() {
        Some(s) => format!("`{s}`"),
        None => "—".to_string(),
    };
    for (i, c) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let status = c["status"].as_u64().unwrap();
        let (typ, code, param) = if status < 400 {
            ("—".to_string(), "—".to_string(), "—".to_string())
        } else {
            (
                cell(&c["type"]),
                cell(&c["code"]),
                cell(c.get("param").unwrap_or(&Value::Null)),
            )
        };
        t.push_str(&format!(
            "| {} | {} | `{} {}` | {status} | {typ} | {code} | {param} |\n",
            i + 1,
            c["name"].as_str().unwrap(),
            c["method"].as_str().unwrap(),
            c["path"].as_str().unwrap(),
        ));
    }
    t
}

#[test]
fn the_doc_table_is_rendered_from_the_fixture() {
    let path = root().join("docs/SERVE.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("{} has no {BEGIN} ... {END} block", path.display());
    };
    let want = format!("{BEGIN}\n{}{END}", table(&fixture()));
    let have = &doc[a..b + END.len()];
    if have != want {
        if std::env::var_os("TUNA_BLESS").is_some() {
            std::fs::write(&path, doc.replace(have, &want)).unwrap();
            return;
        }
        panic!(
            "docs/SERVE.md's table differs from the fixture: run this test with TUNA_BLESS=1 \
             to rewrite it\n{want}"
        );
    }
}
