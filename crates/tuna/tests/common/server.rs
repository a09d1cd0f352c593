//! A `tuna serve` child process for tests (bound to 127.0.0.1 on a free port, killed on drop)
//! and a minimal HTTP/1.1 client over a plain TCP stream, every read and write time-bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A chat template in the tiny vocabulary's style (ChatML).
pub const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// A temp dir with a tiny Llama `lm` that has a chat template.
pub fn lm_setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    tuna_models::testing::write_tiny_llama(&tmp.path().join("lm"), 4).unwrap();
    chat_template(tmp.path());
    tmp
}

/// Gives the model `d/lm` the chat template [`TEMPLATE`].
pub fn chat_template(d: &Path) {
    let cfg = serde_json::json!({ "chat_template": TEMPLATE });
    std::fs::write(d.join("lm/tokenizer_config.json"), cfg.to_string()).unwrap();
}

/// Longest any one request or the server's start may take in a test.
pub const LIMIT: Duration = Duration::from_secs(120);

/// A running `tuna serve`.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Server {
    /// Starts `tuna serve ARGS --port 0` in `dir` and waits for its `listening on` line.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tuna"))
            .arg("serve")
            .args(args)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .current_dir(dir)
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tuna serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(a.to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(LIMIT) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("tuna serve printed no address within {LIMIT:?}");
            }
        };
        Server { child, addr }
    }

    /// Sends one request; `body` as JSON when given.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>, key: Option<&str>) -> Reply {
        request(&self.addr, method, path, body.map(str::as_bytes), key)
    }

    /// POSTs a JSON value.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.call("POST", path, Some(&body.to_string()), None)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The error body, checked for OpenAI's shape (`message`, `type`, `param`, `code`, as
    /// JSON) and `status`.
    pub fn error(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.body);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.contains("application/json"), "{ct}: {}", self.body);
        let e = self.json()["error"].clone();
        for k in ["message", "type", "param", "code"] {
            assert!(e.get(k).is_some(), "no {k} in {e}");
        }
        assert!(!e["message"].as_str().unwrap().is_empty());
        e
    }

    /// The `data:` payloads of a server-sent event stream.
    pub fn events(&self) -> Vec<String> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").map(String::from))
            .collect()
    }
}

/// Opens a connection and writes a request (the connection closes after the answer): a JSON
/// body when given, with the API key `key` when given.
pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    key: Option<&str>,
) -> TcpStream {
    let mut headers = vec![];
    if let Some(k) = key {
        headers.push(("Authorization".to_string(), format!("Bearer {k}")));
    }
    if body.is_some() {
        headers.push(("Content-Type".to_string(), "application/json".to_string()));
    }
    send_raw(addr, method, path, &headers, body)
}

/// Opens a connection and writes a request with exactly `headers` (besides `Host`,
/// `Connection: close` and the body's `Content-Length`).
pub fn send_raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        // The server may answer (413) before reading all of it.
        let _ = s.write_all(b);
    }
    s
}

/// Reads a whole answer from a connection.
pub fn read_reply(mut s: TcpStream) -> Reply {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("reads the answer");
    parse(&raw)
}

/// Sends a request and reads the whole answer.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    key: Option<&str>,
) -> Reply {
    read_reply(send(addr, method, path, body, key))
}

/// Status line, headers and body (chunked transfer decoded).
pub fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
