//! The one entry point the feature-based method uses: fit the classifier a [`ClassifierConfig`]
//! names (choosing `C` on a validation set when none is given), predict, save and load as JSON.

use crate::c_search::next_c;
use crate::config::{ClassifierConfig, ClassifierKind, DEFAULT_C};
use crate::error::{check_c, ClassicError, Result};
use crate::forest::{ForestParams, RandomForest};
use crate::logreg::{softmax, LogisticRegression, LogregParams};
use crate::matrix::{check_labels, check_training, Features, Standardizer};
use crate::svm::{LinearSvm, SvmParams};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::Path;

/// A fitted model with the standardisation applied to features before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted<M> {
    /// Fitted on the training features; `None` when features go in unchanged.
    pub standardizer: Option<Standardizer>,
    /// The model itself.
    pub model: M,
}

/// A fitted classifier of any kind; saved as JSON with a `"kind"` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Classifier {
    /// Logistic regression.
    Logreg(Fitted<LogisticRegression>),
    /// Linear SVM.
    Svm(Fitted<LinearSvm>),
    /// Random forest (never standardised).
    Forest(Fitted<RandomForest>),
}

impl Classifier {
    /// Fits the classifier `cfg` describes, with `cfg.c` or else [`DEFAULT_C`].
    pub fn fit(
        x: &Features,
        y: &[usize],
        n_classes: usize,
        cfg: &ClassifierConfig,
    ) -> Result<Classifier> {
        check_training(x, y, n_classes)?;
        let (standardizer, data) = prepare(x, cfg)?;
        let xs = Features { data: &data, ..*x };
        fit_prepared(
            standardizer,
            &xs,
            y,
            n_classes,
            cfg,
            cfg.c.unwrap_or(DEFAULT_C),
        )
    }

    /// Fits on the training set and reports validation accuracy. When `cfg.c` is unset and the
    /// kind has a `C`, fits once per value of [`C_GRID`](crate::C_GRID), widened past an edge where the best
    /// sits (see [`crate::c_search`]), and keeps the most accurate on the validation set (ties
    /// go to the smaller `C`). Returns the model and the `(C, validation
    /// accuracy)` of each fit made; the list is empty for a forest.
    pub fn fit_select(
        train_x: &Features,
        train_y: &[usize],
        val_x: &Features,
        val_y: &[usize],
        n_classes: usize,
        cfg: &ClassifierConfig,
    ) -> Result<(Classifier, Vec<(f64, f64)>)> {
        check_training(train_x, train_y, n_classes)?;
        val_x.check_for_model(train_x.cols)?;
        check_labels(val_y, val_x.rows, n_classes)?;
        let (standardizer, data) = prepare(train_x, cfg)?;
        let xs = Features {
            data: &data,
            ..*train_x
        };
        let given = match (cfg.kind.has_c(), cfg.c) {
            (false, _) => Some(f64::NAN),
            (true, Some(c)) => Some(c),
            (true, None) if val_x.rows == 0 => {
                return Err(ClassicError::Config(
                    "choosing C needs a non-empty validation set; give C explicitly instead".into(),
                ))
            }
            (true, None) => None,
        };
        let mut best: Option<(f64, f64, Classifier)> = None;
        let mut scores = Vec::new();
        loop {
            let c = match given {
                Some(c) if scores.is_empty() => c,
                Some(_) => break,
                None => match next_c(&scores) {
                    Some(c) => c,
                    None => break,
                },
            };
            let model = fit_prepared(standardizer.clone(), &xs, train_y, n_classes, cfg, c)?;
            if !cfg.kind.has_c() || val_x.rows == 0 {
                return Ok((model, scores));
            }
            let acc = accuracy(&model.predict(val_x)?, val_y);
            tracing::info!(kind = %cfg.kind, c, val_accuracy = acc, "fitted");
            scores.push((c, acc));
            if best
                .as_ref()
                .is_none_or(|(bc, b, _)| acc > *b || (acc == *b && c < *bc))
            {
                best = Some((c, acc, model));
            }
        }
        match best {
            Some((_, _, model)) => Ok((model, scores)),
            None => Err(ClassicError::Config("no value of C to try".into())),
        }
    }

    /// Which kind of classifier this is.
    pub fn kind(&self) -> ClassifierKind {
        match self {
            Classifier::Logreg(_) => ClassifierKind::Logreg,
            Classifier::Svm(_) => ClassifierKind::Svm,
            Classifier::Forest(_) => ClassifierKind::Forest,
        }
    }

    /// Features per row the model expects.
    pub fn n_features(&self) -> usize {
        match self {
            Classifier::Logreg(m) => m.model.n_features,
            Classifier::Svm(m) => m.model.n_features,
            Classifier::Forest(m) => m.model.n_features,
        }
    }

    /// Number of fitted values: weights and intercepts of the linear models, tree nodes of
    /// the forest (each node holds a split or a leaf distribution).
    pub fn n_parameters(&self) -> usize {
        match self {
            Classifier::Logreg(m) => m.model.coef.len() + m.model.intercept.len(),
            Classifier::Svm(m) => m.model.coef.len() + m.model.intercept.len(),
            Classifier::Forest(m) => m.model.trees.iter().map(|t| t.n_nodes()).sum(),
        }
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        match self {
            Classifier::Logreg(m) => m.model.n_classes,
            Classifier::Svm(m) => m.model.n_classes,
            Classifier::Forest(m) => m.model.n_classes,
        }
    }

    /// The predicted class of each row.
    pub fn predict(&self, x: &Features) -> Result<Vec<usize>> {
        let data = self.input(x)?;
        let xs = Features { data: &data, ..*x };
        match self {
            Classifier::Logreg(m) => m.model.predict(&xs),
            Classifier::Svm(m) => m.model.predict(&xs),
            Classifier::Forest(m) => m.model.predict(&xs),
        }
    }

    /// Class probabilities of each row. For the SVM, which has no probability model, these are
    /// the softmax of its decision values: they rank classes like the SVM does but are not
    /// calibrated.
    pub fn predict_proba(&self, x: &Features) -> Result<Vec<Vec<f32>>> {
        let data = self.input(x)?;
        let xs = Features { data: &data, ..*x };
        match self {
            Classifier::Logreg(m) => m.model.predict_proba(&xs),
            Classifier::Svm(m) => Ok(m
                .model
                .decision_function(&xs)?
                .iter()
                .map(|z| softmax(z))
                .collect()),
            Classifier::Forest(m) => m.model.predict_proba(&xs),
        }
    }

    /// Writes the model to `path` as (compact) JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(|e| {
            tuna_core::Error::Invalid(format!("{}: cannot serialise: {e}", path.display()))
        })?;
        Ok(tuna_core::fsutil::atomic_write(path, &bytes)?)
    }

    /// Reads a model written by [`Classifier::save`] and checks that it is well formed.
    pub fn load(path: &Path) -> Result<Classifier> {
        let model: Classifier = tuna_core::fsutil::read_json(path)?;
        model
            .validate()
            .map_err(|e| tuna_core::Error::bad_file(path, e.to_string()))?;
        Ok(model)
    }

    /// Checks array sizes and indices, so that a hand-edited or truncated file cannot make
    /// prediction panic.
    pub fn validate(&self) -> Result<()> {
        let standardizer = match self {
            Classifier::Logreg(m) => m.model.validate().map(|_| &m.standardizer),
            Classifier::Svm(m) => m.model.validate().map(|_| &m.standardizer),
            Classifier::Forest(m) => m.model.validate().map(|_| &m.standardizer),
        }?;
        if let Some(s) = standardizer {
            let usable = s.mean.iter().all(|m| m.is_finite())
                && s.std.iter().all(|v| v.is_finite() && *v > 0.0);
            if s.cols() != self.n_features() || s.std.len() != s.cols() || !usable {
                return Err(ClassicError::Config(format!(
                    "malformed standardiser: {} means, {} scales (positive, finite), \
                     for a model of {} features",
                    s.cols(),
                    s.std.len(),
                    self.n_features()
                )));
            }
        }
        Ok(())
    }

    /// Checked (and, if the model has a standardiser, standardised) features.
    fn input<'a>(&self, x: &'a Features) -> Result<Cow<'a, [f32]>> {
        x.check_for_model(self.n_features())?;
        let standardizer = match self {
            Classifier::Logreg(m) => &m.standardizer,
            Classifier::Svm(m) => &m.standardizer,
            Classifier::Forest(m) => &m.standardizer,
        };
        Ok(match standardizer {
            Some(s) => Cow::Owned(s.transform(x)?),
            None => Cow::Borrowed(x.data),
        })
    }
}

/// The standardiser to use (if any) and the features after it.
fn prepare<'a>(
    x: &'a Features,
    cfg: &ClassifierConfig,
) -> Result<(Option<Standardizer>, Cow<'a, [f32]>)> {
    if cfg.standardize && cfg.kind.has_c() {
        let s = Standardizer::fit(x)?;
        let data = s.transform(x)?;
        Ok((Some(s), Cow::Owned(data)))
    } else {
        Ok((None, Cow::Borrowed(x.data)))
    }
}

/// Fits one model of `cfg.kind` on already checked (and standardised) features.
fn fit_prepared(
    standardizer: Option<Standardizer>,
    x: &Features,
    y: &[usize],
    n_classes: usize,
    cfg: &ClassifierConfig,
    c: f64,
) -> Result<Classifier> {
    if cfg.kind.has_c() {
        check_c(c)?;
    }
    Ok(match cfg.kind {
        ClassifierKind::Logreg => {
            let params = LogregParams {
                c,
                ..LogregParams::default()
            };
            let model = LogisticRegression::fit_checked(x, y, n_classes, &params)?;
            Classifier::Logreg(Fitted {
                standardizer,
                model,
            })
        }
        ClassifierKind::Svm => {
            let params = SvmParams {
                c,
                seed: cfg.seed,
                ..SvmParams::default()
            };
            let model = LinearSvm::fit_checked(x, y, n_classes, &params)?;
            Classifier::Svm(Fitted {
                standardizer,
                model,
            })
        }
        ClassifierKind::Forest => {
            let params = ForestParams {
                n_trees: cfg.n_trees,
                max_depth: cfg.max_depth,
                seed: cfg.seed,
                ..ForestParams::default()
            };
            let model = RandomForest::fit_checked(x, y, n_classes, &params)?;
            Classifier::Forest(Fitted {
                standardizer,
                model,
            })
        }
    })
}

/// Fraction of predictions equal to the labels (0 for no rows).
pub fn accuracy(pred: &[usize], y: &[usize]) -> f64 {
    if y.is_empty() {
        return 0.0;
    }
    pred.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    const KINDS: [ClassifierKind; 3] = [
        ClassifierKind::Logreg,
        ClassifierKind::Svm,
        ClassifierKind::Forest,
    ];

    fn cfg(kind: ClassifierKind) -> ClassifierConfig {
        ClassifierConfig {
            kind,
            n_trees: 25,
            seed: 5,
            ..ClassifierConfig::default()
        }
    }

    #[test]
    fn every_kind_separates_blobs_and_is_deterministic() {
        let (x, y) = testdata::blobs(240, 8, 4, 3);
        let f = Features::new(&x, 240, 8).unwrap();
        for kind in KINDS {
            let m = Classifier::fit(&f, &y, 4, &cfg(kind)).unwrap();
            assert_eq!(accuracy(&m.predict(&f).unwrap(), &y), 1.0, "{kind}");
            assert_eq!(m, Classifier::fit(&f, &y, 4, &cfg(kind)).unwrap(), "{kind}");
            assert_eq!((m.kind(), m.n_classes(), m.n_features()), (kind, 4, 8));
            let p = m.predict_proba(&f).unwrap();
            assert!(p.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
        }
    }

    #[test]
    fn forest_learns_xor_where_logreg_cannot() {
        let (x, y) = testdata::xor(1000, 21);
        let train = Features::new(&x[..1200], 600, 2).unwrap();
        let test = Features::new(&x[1200..], 400, 2).unwrap();
        let held_out = |kind| {
            let m = Classifier::fit(&train, &y[..600], 2, &cfg(kind)).unwrap();
            accuracy(&m.predict(&test).unwrap(), &y[600..])
        };
        let (forest, logreg) = (
            held_out(ClassifierKind::Forest),
            held_out(ClassifierKind::Logreg),
        );
        assert!(forest > 0.95, "forest {forest}");
        assert!((0.35..0.65).contains(&logreg), "logreg {logreg}");
    }

    #[test]
    fn save_load_round_trip_predicts_identically() {
        let (x, y) = testdata::xor(300, 2);
        let f = Features::new(&x, 300, 2).unwrap();
        let dir = std::env::temp_dir().join(format!("tuna-classic-{}", std::process::id()));
        for kind in KINDS {
            let m = Classifier::fit(&f, &y, 2, &cfg(kind)).unwrap();
            let path = dir.join(format!("{kind}.json"));
            m.save(&path).unwrap();
            let back = Classifier::load(&path).unwrap();
            assert_eq!(back, m, "{kind}");
            assert_eq!(
                back.predict_proba(&f).unwrap(),
                m.predict_proba(&f).unwrap()
            );
        }
        let broken = dir.join("broken.json");
        std::fs::write(&broken, r#"{"kind":"logreg","standardizer":null,"model":{"n_features":2,"n_classes":2,"coef":[1.0],"intercept":[0.0,0.0],"n_iter":1,"converged":true}}"#).unwrap();
        let err = Classifier::load(&broken).unwrap_err().to_string();
        assert!(
            err.contains("broken.json") && err.contains("malformed"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fit_select_tries_the_grid_and_prefers_small_c_on_ties() {
        let (x, y) = testdata::blobs(200, 5, 2, 8);
        let train = Features::new(&x[..750], 150, 5).unwrap();
        let val = Features::new(&x[750..], 50, 5).unwrap();
        for kind in [ClassifierKind::Logreg, ClassifierKind::Svm] {
            let (m, scores) =
                Classifier::fit_select(&train, &y[..150], &val, &y[150..], 2, &cfg(kind)).unwrap();
            let cs: Vec<f64> = scores.iter().map(|s| s.0).collect();
            assert_eq!(cs, crate::C_GRID.to_vec());
            assert!(scores.iter().all(|s| s.1 == 1.0), "{scores:?}");
            let smallest = ClassifierConfig {
                c: Some(0.01),
                ..cfg(kind)
            };
            assert_eq!(m, Classifier::fit(&train, &y[..150], 2, &smallest).unwrap());
            // A given C is used as is.
            let (_, one) =
                Classifier::fit_select(&train, &y[..150], &val, &y[150..], 2, &smallest).unwrap();
            assert_eq!(one, vec![(0.01, 1.0)]);
        }
        let forest = cfg(ClassifierKind::Forest);
        let (_, none) =
            Classifier::fit_select(&train, &y[..150], &val, &y[150..], 2, &forest).unwrap();
        assert!(none.is_empty());
        let empty = Features::new(&[], 0, 5).unwrap();
        let err =
            Classifier::fit_select(&train, &y[..150], &empty, &[], 2, &cfg(ClassifierKind::Svm));
        assert!(matches!(err, Err(ClassicError::Config(_))));
    }

    #[test]
    fn bad_input_is_reported() {
        let (x, y) = testdata::blobs(20, 3, 2, 1);
        let f = Features::new(&x, 20, 3).unwrap();
        let c = cfg(ClassifierKind::Logreg);
        let empty = Features::new(&[], 0, 3).unwrap();
        assert!(matches!(
            Classifier::fit(&empty, &[], 2, &c),
            Err(ClassicError::EmptyTrainingSet)
        ));
        let mut nan = x.clone();
        nan[3 * 7 + 2] = f32::NAN;
        let err = Classifier::fit(&Features::new(&nan, 20, 3).unwrap(), &y, 2, &c).unwrap_err();
        assert!(err.to_string().starts_with("row 7, column 2"), "{err}");
        let mut bad_y = y.clone();
        bad_y[4] = 2;
        assert!(matches!(
            Classifier::fit(&f, &bad_y, 2, &c),
            Err(ClassicError::LabelOutOfRange { row: 4, .. })
        ));
        let m = Classifier::fit(&f, &y, 2, &c).unwrap();
        let wide = Features::new(&x[..20], 5, 4).unwrap();
        assert!(matches!(
            m.predict(&wide),
            Err(ClassicError::WidthMismatch {
                expected: 3,
                actual: 4
            })
        ));
        let bad_c = ClassifierConfig { c: Some(-1.0), ..c };
        assert!(matches!(
            Classifier::fit(&f, &y, 2, &bad_c),
            Err(ClassicError::Config(_))
        ));
    }
}
