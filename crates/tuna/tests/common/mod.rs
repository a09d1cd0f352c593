//! What every CLI test needs: the binary run in a temp dir, and its last JSON line.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tuna args` in `dir` with its own cache and one thread.
#[allow(dead_code)]
pub fn tuna(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(args)
        .current_dir(dir)
        .env("TUNA_CACHE_DIR", dir.join("cache"))
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("tuna runs")
}

/// The last line of stdout, parsed as JSON (the `--json` result).
#[allow(dead_code)]
pub fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {stdout}"))
}

/// A real model fetched by scripts/fetch_models.sh (`$TUNA_MODELS_DIR`, default `models/`).
#[allow(dead_code)]
pub fn real_model(name: &str) -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("TUNA_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("models"));
    let m = dir.join(name);
    assert!(
        m.exists(),
        "{} not found: run scripts/fetch_models.sh",
        m.display()
    );
    m
}

/// A file of the shared data folder beside the repository.
#[allow(dead_code)]
pub fn shared_data(rel: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    assert!(
        p.exists(),
        "{} not found (the shared data folder sits beside the repo)",
        p.display()
    );
    p
}

/// The `--json` result of a run that must succeed (its output in the panic message otherwise).
#[allow(dead_code)]
pub fn ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(out)
}

pub mod crash;
pub mod data;
pub mod server;

/// Runs `python3 scripts/SCRIPT ARGS` in `dir` with the packages scripts/test.sh installs
/// (`TUNA_TEST_PYTHONPATH`, from scripts/pydeps.sh), asserts that it succeeds and returns its
/// standard output; `None` (after saying so) when that variable is not set.
#[allow(dead_code)]
pub fn python_check(script: &str, args: &[&str], dir: &Path) -> Option<String> {
    let Ok(pythonpath) = std::env::var("TUNA_TEST_PYTHONPATH") else {
        eprintln!("TUNA_TEST_PYTHONPATH not set: the {script} check is left to scripts/test.sh");
        return None;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(script);
    let out = Command::new("python3")
        .arg(path)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .current_dir(dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(said)
}
