//! The label map: class names in a fixed order, so that class `i` means the same thing in
//! training, checkpoints, predictions and metrics.

use crate::{DataError, Dataset};
use std::path::Path;

/// Class names in index order, sorted when built from data (numeric-aware: `"2"` before `"10"`
/// when every label is an integer). Saved as `{"labels": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabelMap {
    labels: Vec<String>,
}

impl LabelMap {
    /// A map with exactly these labels in this order; they must be non-empty and distinct.
    pub fn new(labels: Vec<String>) -> Result<Self, DataError> {
        if labels.is_empty() {
            return Err(DataError::Invalid(
                "a label map needs at least one label".into(),
            ));
        }
        for (i, l) in labels.iter().enumerate() {
            if l.trim().is_empty() {
                return Err(DataError::Invalid(format!("label {i} is empty")));
            }
            if labels[..i].contains(l) {
                return Err(DataError::Invalid(format!("label \"{l}\" appears twice")));
            }
        }
        Ok(Self { labels })
    }

    /// The distinct labels of `labels`, sorted (numerically if all are integers, else by text).
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Self {
        let mut labels: Vec<String> = labels.into_iter().map(str::to_string).collect();
        labels.sort();
        labels.dedup();
        let numeric: Option<Vec<(i64, String)>> = labels
            .iter()
            .map(|l| l.parse().ok().map(|n| (n, l.clone())))
            .collect();
        if let Some(mut numeric) = numeric {
            numeric.sort();
            labels = numeric.into_iter().map(|(_, l)| l).collect();
        }
        Self { labels }
    }

    /// The label map of a training set: every example must have a label, and there must be at
    /// least two distinct labels.
    pub fn from_dataset(ds: &Dataset) -> Result<Self, DataError> {
        let mut labels = Vec::with_capacity(ds.len());
        for ex in &ds.examples {
            match &ex.label {
                Some(l) => labels.push(l.as_str()),
                None => return Err(ex.error(&ds.path, "missing label")),
            }
        }
        let map = Self::from_labels(labels);
        match map.labels.as_slice() {
            [] => Err(DataError::file(&ds.path, "no labelled examples")),
            [only] => Err(DataError::file(
                &ds.path,
                format!("only one label (\"{only}\") found; a classifier needs at least two"),
            )),
            _ => Ok(map),
        }
    }

    /// The index of `label`, if known.
    pub fn index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// The name of class `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn name(&self, i: usize) -> &str {
        &self.labels[i]
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the map has no classes (never true for a map built by `new` or `from_dataset`).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All class names in index order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The class index of every example of `ds`; `role` (e.g. "validation") names the set in
    /// errors. Unlabelled examples and labels not in the map are errors naming file and line.
    pub fn encode(&self, ds: &Dataset, role: &str) -> Result<Vec<usize>, DataError> {
        ds.examples
            .iter()
            .map(|ex| {
                let label = ex.label.as_deref().ok_or_else(|| {
                    ex.error(&ds.path, format!("missing label in the {role} set"))
                })?;
                self.index(label).ok_or_else(|| {
                    ex.error(
                        &ds.path,
                        format!(
                            "unknown label \"{label}\" in the {role} set; known labels: {}",
                            self.labels.join(", ")
                        ),
                    )
                })
            })
            .collect()
    }

    /// Writes the map as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        Ok(tuna_core::fsutil::write_json(path, self)?)
    }

    /// Reads a map written by [`LabelMap::save`], checking it is non-empty and distinct.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let raw: LabelMap = tuna_core::fsutil::read_json(path)?;
        Self::new(raw.labels).map_err(|e| DataError::file(path, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Example;
    use std::path::PathBuf;

    fn ds(labels: &[Option<&str>]) -> Dataset {
        Dataset::new(
            PathBuf::from("dev.tsv"),
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| Example {
                    text: format!("t{i}"),
                    label: l.map(str::to_string),
                    line: i + 1,
                    file: None,
                })
                .collect(),
        )
    }

    #[test]
    fn numeric_aware_sorting() {
        let m = LabelMap::from_labels(["10", "1", "0", "1", "-2"]);
        assert_eq!(m.labels(), ["-2", "0", "1", "10"]);
        let m = LabelMap::from_labels(["spam", "ham", "10", "2"]);
        assert_eq!(m.labels(), ["10", "2", "ham", "spam"]);
        assert_eq!(
            (m.index("ham"), m.index("x"), m.name(3), m.len()),
            (Some(2), None, "spam", 4)
        );
    }

    #[test]
    fn from_dataset_and_encode() {
        let m = LabelMap::from_dataset(&ds(&[Some("b"), Some("a"), Some("b")])).unwrap();
        assert_eq!(
            m.encode(&ds(&[Some("b"), Some("a")]), "validation")
                .unwrap(),
            [1, 0]
        );
        let e = m
            .encode(&ds(&[Some("a"), Some("x")]), "validation")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "dev.tsv line 2: unknown label \"x\" in the validation set; known labels: a, b"
        );
        let e = m.encode(&ds(&[None]), "test").unwrap_err().to_string();
        assert_eq!(e, "dev.tsv line 1: missing label in the test set");
        let e = LabelMap::from_dataset(&ds(&[Some("a"), Some("a")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("only one label (\"a\")"), "{e}");
        assert!(LabelMap::from_dataset(&ds(&[Some("a"), None])).is_err());
    }

    #[test]
    fn new_checks_and_save_load_round_trip() {
        assert!(LabelMap::new(vec![]).is_err());
        assert!(LabelMap::new(vec!["a".into(), "a".into()]).is_err());
        let m = LabelMap::new(vec!["pos".into(), "neg".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.json");
        m.save(&p).unwrap();
        assert_eq!(LabelMap::load(&p).unwrap(), m);
        std::fs::write(&p, "{\"labels\": []}").unwrap();
        let e = LabelMap::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("labels.json: a label map needs at least one label"),
            "{e}"
        );
        assert!(LabelMap::load(&dir.path().join("none.json")).is_err());
    }
}
