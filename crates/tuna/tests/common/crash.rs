//! Crash tests: a run killed with SIGKILL at a chosen optimiser step, resumed with `--resume`,
//! and its files compared with those of a run that was never interrupted.

#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `tuna args` in `dir` until it completes optimiser step `step` (the hook
/// `TUNA_TEST_HALT_AT_STEP` holds it there), then kills it with SIGKILL. Panics if it ends by
/// itself first.
pub fn kill_at_step(dir: &Path, args: &[&str], step: usize) {
    let mut child = halt_at_step(dir, args, step);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status}");
}

/// Starts `tuna args` in `dir` and returns it, still running, once it stands at optimiser step
/// `step`. Panics if it ends by itself first.
pub fn halt_at_step(dir: &Path, args: &[&str], step: usize) -> Child {
    let signal = dir.join(format!("halted-{step}"));
    let _ = std::fs::remove_file(&signal);
    let log = dir.join(format!("killed-at-{step}.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(args)
        .current_dir(dir)
        .env("TUNA_CACHE_DIR", dir.join("cache"))
        .env("RAYON_NUM_THREADS", "1")
        .env("TUNA_TEST_HALT_AT_STEP", step.to_string())
        .env("TUNA_TEST_HALT_FILE", &signal)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("tuna starts");
    let t0 = Instant::now();
    while !signal.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "tuna {args:?} ended ({status}) before step {step}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "step {step} not reached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Keys of metrics.json that measure time or memory, or say the run was resumed.
fn varies(key: &str) -> bool {
    key.ends_with("seconds") || key.contains("rss") || key.starts_with("resumed")
}

/// `v` without the keys that differ between two runs of the same computation.
fn comparable(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !varies(k))
            .map(|(k, v)| (k.clone(), comparable(v)))
            .collect(),
        serde_json::Value::Array(a) => a.iter().map(comparable).collect(),
        other => other.clone(),
    }
}

/// Every file below `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The run in `b` holds the same files as the one in `a`, each with the same bytes (weights,
/// curves, samples, configs), except that `metrics.json` may differ in times, memory and the
/// resume record. Returns how many files were compared.
pub fn assert_same_run(a: &Path, b: &Path) -> usize {
    let (fa, fb) = (files(a), files(b));
    assert_eq!(fa, fb, "different files in {a:?} and {b:?}");
    for f in &fa {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        if f == "metrics.json" {
            let (x, y): (serde_json::Value, serde_json::Value) = (
                serde_json::from_slice(&x).unwrap(),
                serde_json::from_slice(&y).unwrap(),
            );
            assert_eq!(comparable(&x), comparable(&y), "{f} differs");
        } else {
            assert!(x == y, "{f} differs between {a:?} and {b:?}");
        }
    }
    fa.len()
}

/// The optimiser step of the checkpoint an unfinished run in `partial` left (none: none yet).
pub fn checkpoint_step(partial: &Path) -> Option<usize> {
    ["checkpoint", "checkpoint.old"].iter().find_map(|c| {
        let text = std::fs::read_to_string(partial.join(c).join("state.json")).ok()?;
        let (_, t): (serde_json::Value, usize) = serde_json::from_str(&text).unwrap();
        Some(t)
    })
}

/// Runs `args` to the end in `dir/full`, and again in `dir/crashed` killed at each step of
/// `kills`, each kill leaving the checkpoint of the step paired with it (resumed with
/// `--resume` after each), then checks that both runs left the same files. Returns the crashed
/// run's metrics.json.
pub fn crash_and_compare(
    dir: &Path,
    args: &[&str],
    kills: &[(usize, Option<usize>)],
) -> serde_json::Value {
    let with_out = |out: &'static str, resume: bool| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--out", out]);
        if resume {
            a.push("--resume");
        }
        a
    };
    super::ok(&super::tuna(dir, &with_out("full", false)));
    let partial = dir.join("crashed.partial");
    for (i, &(step, checkpoint)) in kills.iter().enumerate() {
        kill_at_step(dir, &with_out("crashed", i > 0), step);
        assert!(
            partial.is_dir() && !dir.join("crashed").exists(),
            "a killed run must leave only its .partial"
        );
        assert_eq!(
            checkpoint_step(&partial),
            checkpoint,
            "killed at step {step}"
        );
    }
    super::ok(&super::tuna(dir, &with_out("crashed", true)));
    let n = assert_same_run(&dir.join("full"), &dir.join("crashed"));
    assert!(n >= 4, "only {n} files compared");
    serde_json::from_str(&std::fs::read_to_string(dir.join("crashed/metrics.json")).unwrap())
        .unwrap()
}
