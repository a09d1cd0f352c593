//! Which folders tuna may replace: the ones it wrote. Every run directory tuna creates holds a
//! marker file, `.tuna-run`, written before anything else; `--overwrite`, and the clean-up of an
//! unfinished `DIR.partial`, delete a folder only when it is tuna's. Folders of earlier
//! versions (no marker) count as tuna's when they clearly are: a `config.json` naming the tuna
//! version that wrote it (every finished run has one), or, for an unfinished run, a training
//! checkpoint. An empty folder holds nothing to lose. Anything else is refused, with the reason.

use crate::{Error, Result};
use std::path::Path;

/// The marker's file name inside a run directory.
pub const MARKER: &str = ".tuna-run";

/// Marks `dir` (existing) as a run directory written by tuna.
pub fn write(dir: &Path) -> Result<()> {
    let text = serde_json::json!({"written_by": "tuna", "tuna_version": env!("CARGO_PKG_VERSION")});
    Ok(tuna_core::fsutil::atomic_write(
        &dir.join(MARKER),
        format!("{text}\n").as_bytes(),
    )?)
}

/// Locks `dir`'s marker for as long as the returned file is open: the run in `dir` is being
/// written by this process. Another tuna given the same folder sees the lock and stops instead
/// of clearing a run that is still going; the kernel drops the lock when the process ends,
/// killed or not, so a stopped run's folder can still be cleared or resumed. A folder of an
/// earlier version without a marker gets one first.
pub fn hold(dir: &Path) -> Result<std::fs::File> {
    use fs4::fs_std::FileExt;
    let path = dir.join(MARKER);
    if !path.is_file() {
        write(dir)?;
    }
    let file = std::fs::File::open(&path).map_err(|e| tuna_core::Error::io(&path, e))?;
    let free = file
        .try_lock_exclusive()
        .map_err(|e| tuna_core::Error::io(&path, e))?;
    if !free {
        return Err(busy(dir));
    }
    Ok(file)
}

/// Whether another process is writing the run in `dir` now (its marker is locked).
pub fn in_use(dir: &Path) -> bool {
    use fs4::fs_std::FileExt;
    std::fs::File::open(dir.join(MARKER)).is_ok_and(|f| matches!(f.try_lock_exclusive(), Ok(false)))
}

/// The error for a folder that a running tuna is writing.
pub fn busy(dir: &Path) -> Error {
    Error::Invalid(format!(
        "{} is being written by another tuna run that is still going: wait for it to end, \
         or choose another --out",
        dir.display()
    ))
}

/// Why `dir` is tuna's to replace, or none when it is not.
pub fn owned_because(dir: &Path) -> Option<&'static str> {
    if dir.join(MARKER).is_file() {
        return Some("it holds tuna's marker");
    }
    if config_by_tuna(&dir.join("config.json")) {
        return Some("its config.json was written by tuna");
    }
    let ck = dir.join("checkpoint");
    if ck.join("state.json").is_file() || dir.join("checkpoint.old").join("state.json").is_file() {
        return Some("it holds an unfinished tuna run's checkpoint");
    }
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
        return Some("it is empty");
    }
    None
}

/// Whether `path` is a run config written by tuna (a JSON object with `tuna_version`).
fn config_by_tuna(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .is_ok_and(|v| v.get("tuna_version").is_some_and(|t| t.is_string()))
}

/// Ok when `dir` may be deleted and replaced by a run (`what` names the flag or step that wants
/// to); otherwise an error that says why not and what to do.
pub fn check_replaceable(dir: &Path, what: &str) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{what}: {} is not a directory; tuna replaces only run directories it wrote. \
             Choose another --out, or move it away",
            dir.display()
        )));
    }
    match owned_because(dir) {
        Some(why) => {
            tracing::info!(dir = %dir.display(), why, "replacing a run directory");
            Ok(())
        }
        None => Err(Error::Invalid(format!(
            "{what}: {} was not written by tuna (it has no {MARKER} marker and no tuna \
             config.json), so it is left as it is. Choose another --out, or move or delete the \
             folder yourself",
            dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tuna_folders_are_replaceable() {
        let root = tempfile::tempdir().unwrap();
        let d = |n: &str| {
            let p = root.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let marked = d("marked");
        write(&marked).unwrap();
        let old_run = d("old_run");
        std::fs::write(old_run.join("config.json"), r#"{"tuna_version":"0.1.0"}"#).unwrap();
        let old_partial = d("old.partial");
        std::fs::create_dir_all(old_partial.join("checkpoint")).unwrap();
        std::fs::write(old_partial.join("checkpoint/state.json"), "[]").unwrap();
        let empty = d("empty");
        for ok in [&marked, &old_run, &old_partial, &empty] {
            assert!(check_replaceable(ok, "--overwrite").is_ok(), "{ok:?}");
        }
        let mine = d("mine");
        std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
        std::fs::write(mine.join("config.json"), r#"{"name":"not tuna"}"#).unwrap();
        let err = check_replaceable(&mine, "--overwrite")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not written by tuna") && err.contains(MARKER),
            "{err}"
        );
        let file = root.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(check_replaceable(&file, "--overwrite").is_err());
    }
}
