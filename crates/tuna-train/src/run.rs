//! Run directories: everything a finished run leaves behind, written so that a crash never
//! leaves a half-written run (files go to `DIR.partial`, renamed to `DIR` at the end).
//!
//! Layout: `config.json` (what was run, on which model and data), `labels.json`, the fitted
//! method (`classifier.json` for the feature-based method), `metrics.json`.

use crate::features::FeatureConfig;
use crate::finetune::FinetuneConfig;
use crate::task_data::{DataSpec, TaskData};
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
    /// The model, as given (a path).
    pub model: PathBuf,
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
}

impl RunWriter {
    /// Starts a run in `dir`, which must not exist unless `overwrite`.
    pub fn create(dir: &Path, overwrite: bool) -> Result<Self> {
        if dir.exists() && !overwrite {
            return Err(Error::Invalid(format!(
                "run directory {} already exists: choose another --out or pass --overwrite",
                dir.display()
            )));
        }
        let name = dir
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("bad run directory {}", dir.display())))?;
        let partial = dir.with_file_name(format!("{}.partial", name.to_string_lossy()));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| tuna_core::Error::io(&partial, e))?;
        }
        std::fs::create_dir_all(&partial).map_err(|e| tuna_core::Error::io(&partial, e))?;
        Ok(Self {
            partial,
            dir: dir.to_path_buf(),
        })
    }

    /// Reopens the unfinished run `DIR.partial` left by a killed run, keeping its files.
    pub fn reopen(dir: &Path) -> Result<Self> {
        let name = dir
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("bad run directory {}", dir.display())))?;
        let partial = dir.with_file_name(format!("{}.partial", name.to_string_lossy()));
        if !partial.is_dir() {
            return Err(Error::Invalid(format!(
                "--resume: no unfinished run at {} (it is created by a run that was stopped)",
                partial.display()
            )));
        }
        Ok(Self {
            partial,
            dir: dir.to_path_buf(),
        })
    }

    /// Path of a file inside the run being written.
    pub fn path(&self, name: &str) -> PathBuf {
        self.partial.join(name)
    }

    /// Writes `value` as `name` (JSON).
    pub fn json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        Ok(fsutil::write_json(&self.path(name), value)?)
    }

    /// Moves the finished run into place and returns its directory.
    pub fn commit(self) -> Result<PathBuf> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| tuna_core::Error::io(&self.dir, e))?;
        }
        std::fs::rename(&self.partial, &self.dir)
            .map_err(|e| tuna_core::Error::io(&self.dir, e))?;
        Ok(self.dir)
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
}
