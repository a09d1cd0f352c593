//! Run directories: everything a finished run leaves behind, written so that a crash never
//! leaves a half-written run (files go to `DIR.partial`, renamed to `DIR` at the end).
//!
//! Layout: `.tuna-run` (the marker that makes it tuna's, [`crate::run_marker`]), `config.json`
//! (what was run, on which model and data), `labels.json`, the fitted method
//! (`classifier.json` for the feature-based method), `metrics.json`.

use crate::features::FeatureConfig;
use crate::finetune::FinetuneConfig;
use crate::task_data::{DataSpec, TaskData};
use crate::{run_marker, run_name};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tuna_core::fsutil;

/// What was run: enough to reproduce it and to predict with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// tuna version that wrote the run.
    pub tuna_version: String,
    /// Adaptation method (`features`).
    pub method: String,
    /// The model: its absolute path (runs of earlier versions: as given on the command line).
    pub model: PathBuf,
    /// The same model relative to the run directory (none in runs of earlier versions), so a
    /// run moved together with its model still finds it ([`crate::run_model`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_from_run: Option<PathBuf>,
    /// Fingerprint of the model files when the run was made.
    pub model_fingerprint: String,
    /// Settings of the feature-based method.
    #[serde(default)]
    pub features: Option<FeatureConfig>,
    /// Settings of a finetuning method.
    #[serde(default)]
    pub finetune: Option<FinetuneConfig>,
    /// The data files and split.
    pub data: DataRecord,
}

/// The data a run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRecord {
    pub files: Vec<PathBuf>,
    /// `train/val/test` shares (for a split of one file or a carved validation part).
    pub split: String,
    pub seed: u64,
    /// Sizes of the parts and the labels.
    pub summary: String,
}

impl DataRecord {
    /// The record of `data`, read and split as `spec` says.
    pub fn of(data: &TaskData, spec: &DataSpec) -> Self {
        Self {
            files: data.sources.iter().map(|s| s.path.clone()).collect(),
            split: format!(
                "{}/{}/{}",
                spec.split.train() * 100.0,
                spec.split.val() * 100.0,
                spec.split.test() * 100.0
            ),
            seed: spec.seed,
            summary: data.summary(),
        }
    }
}

/// A run directory being written.
pub struct RunWriter {
    partial: PathBuf,
    dir: PathBuf,
    /// Whether an existing `dir` (tuna's) may be replaced at commit.
    overwrite: bool,
    /// The marker of `partial`, locked while this run writes it ([`run_marker::hold`]).
    _hold: std::fs::File,
}

/// `DIR.partial` beside `dir`.
fn partial_of(dir: &Path) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("bad run directory {}", dir.display())))?;
    Ok(dir.with_file_name(format!("{}.partial", name.to_string_lossy())))
}

fn io(path: &Path, e: std::io::Error) -> Error {
    tuna_core::Error::io(path, e).into()
}

/// Makes the parent folder of `dir`.
fn make_parent(dir: &Path) -> Result<()> {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::create_dir_all(p).map_err(|e| io(p, e)),
        _ => Ok(()),
    }
}

impl RunWriter {
    /// Starts a run in `dir`, which must not exist unless `overwrite` (and then only a run
    /// directory tuna wrote is replaced, see [`run_marker`]). An unfinished `DIR.partial` of a
    /// stopped run is cleared first, if it is tuna's.
    pub fn create(dir: &Path, overwrite: bool) -> Result<Self> {
        if dir.exists() {
            if !overwrite {
                return Err(Error::Invalid(format!(
                    "run directory {} already exists: choose another --out or pass --overwrite",
                    dir.display()
                )));
            }
            run_marker::check_replaceable(dir, "--overwrite")?;
        }
        let partial = partial_of(dir)?;
        if partial.exists() {
            if run_marker::in_use(&partial) {
                return Err(run_marker::busy(&partial));
            }
            run_marker::check_replaceable(&partial, "clearing an unfinished run")?;
            std::fs::remove_dir_all(&partial).map_err(|e| io(&partial, e))?;
        }
        make_parent(dir)?;
        match std::fs::create_dir(&partial) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Invalid(format!(
                    "{} was created by another run just now: choose another --out",
                    partial.display()
                )))
            }
            r => r.map_err(|e| io(&partial, e))?,
        }
        run_marker::write(&partial)?;
        Ok(Self {
            _hold: run_marker::hold(&partial)?,
            partial,
            dir: dir.to_path_buf(),
            overwrite,
        })
    }

    /// Starts a run under a new name in `root`: `<prefix>-<UTC time>`, or with `-2`, `-3`, ...
    /// when that is taken. The name is claimed atomically (its `.partial` folder is created or
    /// the next name is tried), so runs started together never share one.
    pub fn create_new(root: &Path, prefix: &str) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
        let stamp = run_name::utc_stamp(std::time::SystemTime::now());
        for k in 1..10_000 {
            let dir = root.join(run_name::candidate(prefix, &stamp, k));
            let partial = partial_of(&dir)?;
            if dir.exists() {
                continue;
            }
            match std::fs::create_dir(&partial) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&partial, e)),
            }
            // A run that finished between the check and the claim renamed its .partial here.
            if dir.exists() {
                let _ = std::fs::remove_dir(&partial);
                continue;
            }
            run_marker::write(&partial)?;
            return Ok(Self {
                _hold: run_marker::hold(&partial)?,
                partial,
                dir,
                overwrite: false,
            });
        }
        Err(Error::Invalid(format!(
            "no free run name {prefix}-{stamp}-N in {}: pass --out",
            root.display()
        )))
    }

    /// Reopens the unfinished run `DIR.partial` left by a killed run, keeping its files; at the
    /// end an existing `dir` is replaced only with `overwrite`, as [`RunWriter::create`] does.
    pub fn reopen(dir: &Path, overwrite: bool) -> Result<Self> {
        let partial = partial_of(dir)?;
        if !partial.is_dir() {
            return Err(Error::Invalid(format!(
                "--resume: no unfinished run at {} (it is created by a run that was stopped)",
                partial.display()
            )));
        }
        Ok(Self {
            _hold: run_marker::hold(&partial)?,
            partial,
            dir: dir.to_path_buf(),
            overwrite,
        })
    }

    /// The run's directory once it is finished.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a file inside the run being written.
    pub fn path(&self, name: &str) -> PathBuf {
        self.partial.join(name)
    }

    /// Writes `value` as `name` (JSON).
    pub fn json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        Ok(fsutil::write_json(&self.path(name), value)?)
    }

    /// Moves the finished run into place and returns its directory. A run directory that is
    /// there already is replaced (with `overwrite`, if it is tuna's) by renaming it aside first,
    /// so a kill at any moment leaves either run whole.
    pub fn commit(self) -> Result<PathBuf> {
        if !self.dir.exists() {
            std::fs::rename(&self.partial, &self.dir).map_err(|e| io(&self.dir, e))?;
            return Ok(self.dir);
        }
        if !self.overwrite {
            return Err(Error::Invalid(format!(
                "{} appeared while this run was written; the run is kept in {}",
                self.dir.display(),
                self.partial.display()
            )));
        }
        run_marker::check_replaceable(&self.dir, "--overwrite")?;
        let aside = partial_of(&self.dir)?.with_extension("replaced");
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| io(&aside, e))?;
        }
        std::fs::rename(&self.dir, &aside).map_err(|e| io(&self.dir, e))?;
        std::fs::rename(&self.partial, &self.dir).map_err(|e| io(&self.dir, e))?;
        std::fs::remove_dir_all(&aside).map_err(|e| io(&aside, e))?;
        Ok(self.dir)
    }
}

impl RunConfig {
    /// The model to use for the run in `dir` (`given`: the `--model` flag).
    pub fn find_model(
        &self,
        dir: &Path,
        given: Option<&Path>,
    ) -> Result<crate::run_model::RunModel> {
        crate::run_model::resolve(dir, &self.model, self.model_from_run.as_deref(), given)
    }
}

/// Reads a finished run's `config.json`.
pub fn read_run_config(dir: &Path) -> Result<RunConfig> {
    let path = dir.join("config.json");
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "{} is not a tuna run directory (no config.json)",
            dir.display()
        )));
    }
    Ok(fsutil::read_json(&path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_until_commit_and_no_clobber() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run1");
        let w = RunWriter::create(&dir, false).unwrap();
        w.json("metrics.json", &serde_json::json!({"accuracy": 1.0}))
            .unwrap();
        assert!(!dir.exists(), "visible before commit");
        let done = w.commit().unwrap();
        assert!(done.join("metrics.json").exists());
        assert!(!root.path().join("run1.partial").exists());
        let err = RunWriter::create(&dir, false).err().unwrap().to_string();
        assert!(err.contains("--overwrite"), "{err}");
        assert!(RunWriter::create(&dir, true).is_ok());
    }

    #[test]
    fn overwrite_replaces_only_what_tuna_wrote() {
        let root = tempfile::tempdir().unwrap();
        let mine = root.path().join("scratch");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("thesis.tex"), "my own work").unwrap();
        let err = RunWriter::create(&mine, true).err().unwrap().to_string();
        assert!(err.contains("not written by tuna"), "{err}");
        assert!(mine.join("thesis.tex").exists());
        assert!(!root.path().join("scratch.partial").exists());
        // A user folder named like an unfinished run is not cleared either.
        let dir = root.path().join("run");
        let partial = root.path().join("run.partial");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("keep.txt"), "x").unwrap();
        assert!(RunWriter::create(&dir, false).is_err());
        assert!(partial.join("keep.txt").exists());
        std::fs::remove_dir_all(&partial).unwrap();
        // A run of an earlier version (no marker, tuna's config.json) is replaced.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"tuna_version":"0.1.0"}"#).unwrap();
        let w = RunWriter::create(&dir, true).unwrap();
        w.json("metrics.json", &1).unwrap();
        let done = w.commit().unwrap();
        assert!(done.join(run_marker::MARKER).exists() && done.join("metrics.json").exists());
        assert!(!done.join("config.json").exists());
        // The user's folder is checked again at the end.
        let w = RunWriter::create(&dir, true).unwrap();
        std::fs::remove_file(dir.join(run_marker::MARKER)).unwrap();
        std::fs::write(dir.join("notes.txt"), "added meanwhile").unwrap();
        assert!(w.commit().is_err());
        assert!(dir.join("notes.txt").exists());
    }

    #[test]
    fn new_names_are_unique_when_runs_start_together() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_path_buf();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let w = RunWriter::create_new(&r, "features-logreg").unwrap();
                    w.json("metrics.json", &1).unwrap();
                    w.commit().unwrap()
                })
            })
            .collect();
        let mut dirs: Vec<PathBuf> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        dirs.sort();
        dirs.dedup();
        assert_eq!(dirs.len(), 8, "{dirs:?}");
        for d in &dirs {
            assert!(d.join("metrics.json").exists(), "{d:?}");
        }
    }
}
