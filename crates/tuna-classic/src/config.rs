//! Choosing a classifier: its kind (parsed from `logreg`, `svm`, `forest`) and its settings.

use crate::error::ClassicError;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Values of `C` tried by [`Classifier::fit_select`](crate::Classifier::fit_select) when none is given.
pub const C_GRID: [f64; 5] = [0.01, 0.1, 1.0, 10.0, 100.0];

/// `C` used by [`Classifier::fit`](crate::Classifier::fit) when none is given.
pub const DEFAULT_C: f64 = 1.0;

/// Which classical classifier to fit on the features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierKind {
    /// Multinomial logistic regression ([`LogisticRegression`](crate::LogisticRegression)).
    Logreg,
    /// One-vs-rest linear SVM ([`LinearSvm`](crate::LinearSvm)).
    Svm,
    /// Random forest ([`RandomForest`](crate::RandomForest)).
    Forest,
}

impl ClassifierKind {
    /// Whether this kind has a regularisation constant `C` to choose.
    pub fn has_c(self) -> bool {
        !matches!(self, ClassifierKind::Forest)
    }
}

impl FromStr for ClassifierKind {
    type Err = ClassicError;

    fn from_str(s: &str) -> Result<Self, ClassicError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "logreg" => Ok(ClassifierKind::Logreg),
            "svm" => Ok(ClassifierKind::Svm),
            "forest" => Ok(ClassifierKind::Forest),
            _ => Err(ClassicError::Config(format!(
                "unknown classifier `{s}`; choose one of: logreg (logistic regression), \
                 svm (linear SVM), forest (random forest)"
            ))),
        }
    }
}

impl std::fmt::Display for ClassifierKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClassifierKind::Logreg => "logreg",
            ClassifierKind::Svm => "svm",
            ClassifierKind::Forest => "forest",
        })
    }
}

/// How to fit a classifier on frozen features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Classifier: `logreg`, `svm` or `forest`.
    pub kind: ClassifierKind,
    /// Regularisation `C` of logreg and svm (larger = weaker); unset = pick the best of
    /// 0.01, 0.1, 1, 10, 100 on the validation set (or 1.0 without one).
    pub c: Option<f64>,
    /// Standardise each feature with the training mean and std before logreg or svm
    /// (the forest does not need it and ignores this).
    pub standardize: bool,
    /// Number of trees of the random forest.
    pub n_trees: usize,
    /// Deepest a forest tree may grow; unset = until leaves are pure.
    pub max_depth: Option<usize>,
    /// Seed of the SVM's visiting order and of the forest's sampling.
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            kind: ClassifierKind::Logreg,
            c: None,
            standardize: true,
            n_trees: 100,
            max_depth: None,
            seed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for kind in [
            ClassifierKind::Logreg,
            ClassifierKind::Svm,
            ClassifierKind::Forest,
        ] {
            assert_eq!(kind.to_string().parse::<ClassifierKind>().unwrap(), kind);
        }
        assert_eq!(
            " SVM ".parse::<ClassifierKind>().unwrap(),
            ClassifierKind::Svm
        );
        let err = "knn".parse::<ClassifierKind>().unwrap_err().to_string();
        assert!(err.contains("`knn`") && err.contains("logreg") && err.contains("forest"));
        assert_eq!(
            serde_json::to_string(&ClassifierKind::Forest).unwrap(),
            "\"forest\""
        );
    }

    #[test]
    fn defaults() {
        let cfg = ClassifierConfig::default();
        assert!(cfg.standardize && cfg.c.is_none() && cfg.n_trees == 100);
        assert!(ClassifierKind::Svm.has_c() && !ClassifierKind::Forest.has_c());
    }
}
