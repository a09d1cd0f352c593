//! `tuna chat` on the real SmolLM2 (the GGUF): two turns read from a pipe, the second reusing
//! the first turn's key/value cache (that a cached run answers as a fresh one is tested on a
//! tiny model in tuna-lm). Needs `scripts/fetch_models.sh` (run by `scripts/test.sh`).

use std::io::Write;
use std::process::{Command, Stdio};

mod common;

#[test]
fn chat_reuses_the_conversation_cache() {
    let model = common::real_model("smollm2.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["--json", "chat", "--max-new-tokens", "12", "-m"])
        .arg(&model)
        .current_dir(tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is the capital of France?\nAnd of Italy?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let turns: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert_eq!(turns[0]["cached_tokens"], 0);
    let (prompt, cached) = (
        turns[1]["prompt_tokens"].as_u64().unwrap(),
        turns[1]["cached_tokens"].as_u64().unwrap(),
    );
    // The first turn's prompt and most of its answer come from the cache.
    let first = turns[0]["prompt_tokens"].as_u64().unwrap();
    assert!(cached > first && cached < prompt, "{turns:?}");
}
