//! `--device cuda` on a build without CUDA: every command that takes the flag stops at once with
//! one message that says so, before it reads a file or writes anything.

mod common;

use common::tuna;

/// Each command with `--device`, with its required arguments (files that need not exist: the
/// device is checked first).
const COMMANDS: &[&[&str]] = &[
    &["embed", "--model", "m", "--input", "t.txt"],
    &["train", "--model", "m", "--data", "d.csv", "--out", "o"],
    &["compare", "--model", "m", "--data", "d.csv", "--out", "o"],
    &["merge", "--run", "r", "--out", "o"],
    &["predict", "--run", "r", "hello"],
    &["generate", "--model", "m", "hello"],
    &["chat", "--model", "m"],
    &["icl", "--model", "m", "--data", "d.csv"],
    &["prompt-search", "--model", "m", "--data", "d.csv"],
    &["sft", "--model", "m", "--data", "d.json", "--out", "o"],
    &[
        "reward", "train", "--model", "m", "--data", "d.json", "--out", "o",
    ],
    &[
        "reward",
        "score",
        "--run",
        "r",
        "--prompt",
        "p",
        "--response",
        "x",
    ],
    &["dpo", "--model", "m", "--data", "d.json", "--out", "o"],
    &[
        "ppo", "--model", "m", "--data", "d.json", "--out", "o", "--reward", "r",
    ],
    &["index", "add", "--index", "i.db", "docs"],
    &["index", "eval", "--index", "i.db", "--questions", "q.json"],
    &["search", "--index", "i.db", "query"],
    &["ask", "--index", "i.db", "--model", "m", "question"],
    &["info", "--model", "m"],
];

#[cfg(not(feature = "cuda"))]
#[test]
fn every_device_flag_says_the_build_has_no_cuda() {
    let dir = tempfile::tempdir().unwrap();
    for args in COMMANDS {
        for device in ["cuda", "cuda:1"] {
            let mut all = args.to_vec();
            all.extend(["--device", device, "--json"]);
            let out = tuna(dir.path(), &all);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{all:?}: {stderr}");
            let want = format!(
                "error: device `{device}` asked for, but this tuna was built without CUDA support"
            );
            assert!(stderr.starts_with(&want), "{all:?}: {stderr}");
            assert_eq!(
                stderr.lines().count(),
                1,
                "{all:?}: one message only: {stderr}"
            );
            let json = common::last_json(&out);
            assert_eq!(json["ok"], false, "{all:?}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
}

#[test]
fn cpu_stays_the_default_and_unknown_devices_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = tuna(dir.path(), &["info", "--model", "m", "--device", "tpu"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("unknown device `tpu`: use cpu, cuda or cuda:N"),
        "{stderr}"
    );
    // With the default device the command gets as far as the model.
    let out = tuna(dir.path(), &["info", "--model", "missing-model"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing-model"), "{stderr}");
    assert!(!stderr.contains("device"), "{stderr}");
}
