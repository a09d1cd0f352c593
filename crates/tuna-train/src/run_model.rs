//! The model a finished run was trained on, found from the run and never from the folder a
//! command happens to run in. A run records the model's absolute path (`model`) and, since the
//! run directories with markers, the same model's path relative to the run directory
//! (`model_from_run`, e.g. `../../models/minilm`), which still holds when the run and its
//! model move together. Runs written before tuna recorded absolute paths hold `model` as typed,
//! relative to the folder training ran in; that folder is not known, so such a path is looked
//! up from the run directory and each folder above it (the usual `--out runs/NAME` from the
//! project's root finds it there), and only then from the current folder.
//!
//! Order: `--model`; the recorded absolute path; the run-relative path; a relative recorded
//! path from the run upwards, then from the current folder. The caller reports which was used.

use crate::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// The model a run will use and how it was found.
#[derive(Debug, Clone)]
pub struct RunModel {
    pub path: PathBuf,
    /// How it was found, for the user ("recorded in the run", ...).
    pub how: String,
}

/// `model` relative to `run_dir` (which need not exist yet; its parent must), for the record;
/// none when either cannot be made absolute.
pub fn relative_to_run(model: &Path, run_dir: &Path) -> Option<PathBuf> {
    let model = std::fs::canonicalize(model).ok()?;
    let parent = match run_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let run = std::fs::canonicalize(parent)
        .ok()?
        .join(run_dir.file_name()?);
    let (m, r): (Vec<Component>, Vec<Component>) =
        (model.components().collect(), run.components().collect());
    let common = m.iter().zip(&r).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..r.len() {
        rel.push("..");
    }
    for c in &m[common..] {
        rel.push(c);
    }
    Some(rel)
}

/// Finds the model of the run in `run_dir` whose config records `recorded` (and `from_run`,
/// when it has one); `given` (`--model`) wins over both.
pub fn resolve(
    run_dir: &Path,
    recorded: &Path,
    from_run: Option<&Path>,
    given: Option<&Path>,
) -> Result<RunModel> {
    let found = |path: PathBuf, how: String| Ok(RunModel { path, how });
    if let Some(g) = given {
        return found(g.to_path_buf(), "given with --model".into());
    }
    if recorded.is_absolute() && recorded.exists() {
        return found(recorded.to_path_buf(), "recorded in the run".into());
    }
    let mut tried = vec![recorded.to_path_buf()];
    if let Some(rel) = from_run {
        let p = run_dir.join(rel);
        if p.exists() {
            let how = format!(
                "{} relative to the run (the recorded {} is not there)",
                rel.display(),
                recorded.display()
            );
            return found(p, how);
        }
        tried.push(p);
    }
    if recorded.is_relative() {
        let run = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
        for base in run.ancestors() {
            let p = base.join(recorded);
            if p.exists() {
                let how = format!(
                    "recorded as {}, found from {}",
                    recorded.display(),
                    base.display()
                );
                return found(p, how);
            }
            tried.push(p);
        }
        if recorded.exists() {
            let how = format!(
                "recorded as {}, found only from the current folder",
                recorded.display()
            );
            return found(recorded.to_path_buf(), how);
        }
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(Error::Invalid(format!(
        "{}: the run's model is not there (looked for {}); pass --model PATH with the model it \
         was trained on",
        run_dir.join("config.json").display(),
        tried.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_from_the_run_wherever_the_command_runs() {
        let root = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(root.path()).unwrap();
        let model = root.join("proj/models/m");
        let run = root.join("proj/runs/r");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        let rel = relative_to_run(&model, &run).unwrap();
        assert_eq!(rel, Path::new("../../models/m"));
        // Recorded absolute: used as it is.
        let m = resolve(&run, &model, Some(&rel), None).unwrap();
        assert_eq!(
            (m.path.as_path(), m.how.as_str()),
            (model.as_path(), "recorded in the run")
        );
        // The absolute path gone (the project moved): the run-relative one.
        let m = resolve(&run, &root.join("gone/m"), Some(&rel), None).unwrap();
        assert_eq!(std::fs::canonicalize(&m.path).unwrap(), model);
        // An old run's relative path: from the run upwards, not from the current folder.
        let m = resolve(&run, Path::new("models/m"), None, None).unwrap();
        assert_eq!(m.path, model);
        assert!(m.how.contains("found from"), "{}", m.how);
        let err = resolve(&run, Path::new("nowhere/m"), None, None).unwrap_err();
        assert!(err.to_string().contains("--model"), "{err}");
        let m = resolve(&run, Path::new("nowhere"), None, Some(Path::new("x"))).unwrap();
        assert_eq!(m.path, Path::new("x"));
    }
}
