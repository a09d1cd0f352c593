//! A classification task's data: train / validation / test parts drawn from one file (seeded
//! stratified split) or given as separate files, with the label map of the training part.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tuna_data::{
    balanced_subset, read_dataset, shared_texts, stratified_split, Dataset, LabelMap, ReadOptions,
    SplitSpec,
};

/// Where the data comes from and how it is split.
#[derive(Debug, Clone)]
pub struct DataSpec {
    /// One file to split into train / validation / test.
    pub data: Option<PathBuf>,
    /// Training file (instead of `data`).
    pub train: Option<PathBuf>,
    /// Validation file; without one, `split`'s validation share is taken from `train`.
    pub val: Option<PathBuf>,
    /// Test file; optional with `train`.
    pub test: Option<PathBuf>,
    /// How to read every file.
    pub read: ReadOptions,
    /// Shares of the split, used with `data` (and for the validation share with `train`).
    pub split: SplitSpec,
    /// Seed of the split.
    pub seed: u64,
    /// With `data`: undersample every class to the smallest class's size before splitting.
    pub balance: bool,
}

/// Rows of one source file that make up a part of the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// Index into [`TaskData::sources`].
    pub source: usize,
    /// Row indices into that source, ascending.
    pub rows: Vec<usize>,
}

/// The task's data, ready for a method.
pub struct TaskData {
    /// The files read (1 to 3).
    pub sources: Vec<Dataset>,
    /// Label index of every row of every source.
    pub source_labels: Vec<Vec<usize>>,
    pub train: Part,
    pub val: Part,
    /// Absent when only training (and validation) data was given.
    pub test: Option<Part>,
    /// Labels, from the training part.
    pub labels: LabelMap,
}

impl TaskData {
    /// Gold label indices of a part.
    pub fn labels_of(&self, part: &Part) -> Vec<usize> {
        part.rows
            .iter()
            .map(|&r| self.source_labels[part.source][r])
            .collect()
    }

    /// Texts of a part.
    pub fn texts_of(&self, part: &Part) -> Vec<&str> {
        let ex = &self.sources[part.source].examples;
        part.rows.iter().map(|&r| ex[r].text.as_str()).collect()
    }

    /// What the user should check, one line each: how every file was read (format, header,
    /// text and label columns, and whether they were detected), the bad rows left out, and
    /// exact duplicates of training texts in the validation and test parts.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.sources.iter().flat_map(Dataset::notes).collect();
        let train = self.texts_of(&self.train);
        let parts = [
            ("validation", Some(&self.val)),
            ("test", self.test.as_ref()),
        ];
        for (name, part) in parts {
            let Some(part) = part else { continue };
            let texts = self.texts_of(part);
            let n = shared_texts(&train, &texts);
            if n > 0 {
                notes.push(format!(
                    "warning: {n} of the {} {name} texts are exact duplicates of training \
                     texts: their {name} scores measure memory, not generalisation",
                    texts.len()
                ));
            }
        }
        notes
    }

    /// One line describing the parts, for logs.
    pub fn summary(&self) -> String {
        format!(
            "{} labels ({}); train {}, validation {}, test {}",
            self.labels.len(),
            self.labels.labels().join(", "),
            self.train.rows.len(),
            self.val.rows.len(),
            self.test.as_ref().map_or(0, |t| t.rows.len()),
        )
    }
}

/// Reads and splits the data described by `spec`.
pub fn load_task_data(spec: &DataSpec) -> Result<TaskData> {
    match (&spec.data, &spec.train) {
        (Some(_), Some(_)) => Err(Error::Invalid(
            "give either --data (one file to split) or --train (with optional --val/--test), not both".into(),
        )),
        (None, None) => Err(Error::Invalid(
            "no data: give --data FILE, or --train FILE with optional --val FILE and --test FILE".into(),
        )),
        (Some(path), None) => {
            if spec.val.is_some() || spec.test.is_some() {
                return Err(Error::Invalid(
                    "--val/--test go with --train; with --data the split comes from --split".into(),
                ));
            }
            let ds = read_dataset(path, &spec.read)?;
            let labels = LabelMap::from_dataset(&ds)?;
            let y = labels.encode(&ds, "data")?;
            let mut keep: Vec<usize> = if spec.balance {
                balanced_subset(&y, None, spec.seed)
            } else {
                (0..y.len()).collect()
            };
            keep.sort_unstable();
            let y_kept: Vec<usize> = keep.iter().map(|&i| y[i]).collect();
            let s = stratified_split(&y_kept, &spec.split, spec.seed);
            let part = |rows: Vec<usize>| {
                let mut rows: Vec<usize> = rows.into_iter().map(|i| keep[i]).collect();
                rows.sort_unstable();
                Part { source: 0, rows }
            };
            let test = (!s.test.is_empty()).then(|| part(s.test));
            Ok(TaskData {
                sources: vec![ds],
                source_labels: vec![y],
                train: part(s.train),
                val: part(s.val),
                test,
                labels,
            })
        }
        (None, Some(train_path)) => {
            let train_ds = read_dataset(train_path, &spec.read)?;
            let labels = LabelMap::from_dataset(&train_ds)?;
            let y_train = labels.encode(&train_ds, "train")?;
            let mut sources = vec![train_ds];
            let mut source_labels = vec![y_train];
            let mut add = |path: &PathBuf, role: &str| -> Result<Part> {
                let ds = read_dataset(path, &spec.read)?;
                source_labels.push(labels.encode(&ds, role)?);
                sources.push(ds);
                Ok(Part {
                    source: sources.len() - 1,
                    rows: (0..source_labels[sources.len() - 1].len()).collect(),
                })
            };
            let val = spec.val.as_ref().map(|p| add(p, "validation")).transpose()?;
            let test = spec.test.as_ref().map(|p| add(p, "test")).transpose()?;
            let (train, val) = match val {
                Some(v) => (Part { source: 0, rows: (0..source_labels[0].len()).collect() }, v),
                None => {
                    // Carve the validation share out of the training file.
                    let share = spec.split.val() / (spec.split.train() + spec.split.val());
                    let carve = SplitSpec::new(1.0 - share, share, 0.0)?;
                    let s = stratified_split(&source_labels[0], &carve, spec.seed);
                    (Part { source: 0, rows: s.train }, Part { source: 0, rows: s.val })
                }
            };
            Ok(TaskData {
                sources,
                source_labels,
                train,
                val,
                test,
                labels,
            })
        }
    }
}
