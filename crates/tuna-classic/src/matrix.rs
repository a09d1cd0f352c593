//! Dense feature matrices (a borrowed row-major `f32` buffer), the checks every fit and predict
//! runs on them, and per-column standardisation.

use crate::error::{ClassicError, Result};
use serde::{Deserialize, Serialize};

/// A borrowed row-major matrix of features: row `i` is `data[i * cols..(i + 1) * cols]`.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    /// Row-major values, `rows * cols` of them.
    pub data: &'a [f32],
    /// Number of examples.
    pub rows: usize,
    /// Number of features per example.
    pub cols: usize,
}

impl<'a> Features<'a> {
    /// Wraps `data` as a `rows x cols` matrix, checking that the length matches.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        let f = Features { data, rows, cols };
        f.check_shape()?;
        Ok(f)
    }

    /// Row `i` (panics if `i >= rows`, like slice indexing).
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Checks that `data.len() == rows * cols`.
    pub fn check_shape(&self) -> Result<()> {
        let expected = self.rows.saturating_mul(self.cols);
        if self.data.len() != expected {
            return Err(ClassicError::LengthMismatch {
                what: "feature buffer (rows x cols)",
                expected,
                actual: self.data.len(),
            });
        }
        Ok(())
    }

    /// Checks the shape and that every value is finite, naming the first bad row and column.
    pub fn check(&self) -> Result<()> {
        self.check_shape()?;
        if let Some(pos) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(ClassicError::NonFinite {
                row: pos / self.cols,
                col: pos % self.cols,
                value: self.data[pos],
            });
        }
        Ok(())
    }

    /// [`Features::check`] plus a width check against what a model was fitted on.
    pub fn check_for_model(&self, expected_cols: usize) -> Result<()> {
        if self.cols != expected_cols {
            return Err(ClassicError::WidthMismatch {
                expected: expected_cols,
                actual: self.cols,
            });
        }
        self.check()
    }
}

/// Checks a training set: non-empty, finite, `y.len() == rows`, labels below `n_classes`
/// (at least 2). Returns the number of examples per class and warns about empty classes.
pub fn check_training(x: &Features, y: &[usize], n_classes: usize) -> Result<Vec<usize>> {
    if n_classes < 2 {
        return Err(ClassicError::Config(format!(
            "n_classes is {n_classes}; a classifier needs at least 2 classes"
        )));
    }
    if x.rows == 0 {
        return Err(ClassicError::EmptyTrainingSet);
    }
    if x.cols == 0 {
        return Err(ClassicError::Config(
            "the features have 0 columns; nothing to learn from".into(),
        ));
    }
    x.check()?;
    let counts = check_labels(y, x.rows, n_classes)?;
    let empty: Vec<usize> = (0..n_classes).filter(|&k| counts[k] == 0).collect();
    if !empty.is_empty() {
        tracing::warn!(
            classes = ?empty,
            "some classes have no training examples; the model will (almost) never predict them"
        );
    }
    Ok(counts)
}

/// Checks that there are `rows` labels, all below `n_classes`; returns the count per class.
pub fn check_labels(y: &[usize], rows: usize, n_classes: usize) -> Result<Vec<usize>> {
    if y.len() != rows {
        return Err(ClassicError::LengthMismatch {
            what: "labels (one per feature row)",
            expected: rows,
            actual: y.len(),
        });
    }
    let mut counts = vec![0usize; n_classes];
    for (row, &label) in y.iter().enumerate() {
        if label >= n_classes {
            return Err(ClassicError::LabelOutOfRange {
                row,
                label,
                n_classes,
            });
        }
        counts[label] += 1;
    }
    Ok(counts)
}

/// Per-column standardisation `(x - mean) / std`, fitted on training features.
///
/// `std` is the population standard deviation; a column whose std is below `1e-8` (constant in
/// training) is only centred (divided by 1), as scikit-learn's `StandardScaler` does, so that a
/// value unseen in training cannot be blown up by a near-zero divisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column scales (standard deviation, or 1 for constant columns).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Below this standard deviation a column counts as constant.
    pub const STD_FLOOR: f64 = 1e-8;

    /// Fits the column means and standard deviations of `x` (which should be checked first).
    pub fn fit(x: &Features) -> Result<Self> {
        x.check_shape()?;
        if x.rows == 0 {
            return Err(ClassicError::EmptyTrainingSet);
        }
        let n = x.rows as f64;
        let mut mean = vec![0.0f64; x.cols];
        for i in 0..x.rows {
            for (m, &v) in mean.iter_mut().zip(x.row(i)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; x.cols];
        for i in 0..x.rows {
            for ((s, &v), m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
                let d = v as f64 - m;
                *s += d * d;
            }
        }
        let std = var
            .into_iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd < Self::STD_FLOOR {
                    1.0
                } else {
                    sd
                }
            })
            .collect();
        Ok(Standardizer { mean, std })
    }

    /// Number of columns this was fitted on.
    pub fn cols(&self) -> usize {
        self.mean.len()
    }

    /// Returns the standardised copy of `x` (same shape, row-major).
    pub fn transform(&self, x: &Features) -> Result<Vec<f32>> {
        if x.cols != self.cols() {
            return Err(ClassicError::WidthMismatch {
                expected: self.cols(),
                actual: x.cols,
            });
        }
        x.check_shape()?;
        let mut out = Vec::with_capacity(x.data.len());
        for i in 0..x.rows {
            for ((&v, m), s) in x.row(i).iter().zip(&self.mean).zip(&self.std) {
                out.push(((v as f64 - m) / s) as f32);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_shape_checks() {
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x = Features::new(&data, 2, 3).unwrap();
        assert_eq!(x.row(1), &[4.0, 5.0, 6.0]);
        assert!(matches!(
            Features::new(&data, 4, 2),
            Err(ClassicError::LengthMismatch { expected: 8, .. })
        ));
        assert!(matches!(
            x.check_for_model(4),
            Err(ClassicError::WidthMismatch {
                expected: 4,
                actual: 3
            })
        ));
    }

    #[test]
    fn training_checks_name_the_row() {
        let data = [1.0, 2.0, 3.0, f32::INFINITY];
        let x = Features::new(&data, 2, 2).unwrap();
        let err = check_training(&x, &[0, 1], 2).unwrap_err();
        assert!(matches!(
            err,
            ClassicError::NonFinite { row: 1, col: 1, .. }
        ));
        let data = [1.0, 2.0, 3.0, 4.0];
        let x = Features::new(&data, 2, 2).unwrap();
        let err = check_training(&x, &[0, 5], 2).unwrap_err();
        assert!(matches!(
            err,
            ClassicError::LabelOutOfRange {
                row: 1,
                label: 5,
                ..
            }
        ));
        assert!(check_training(&x, &[0], 2).is_err());
        let empty = Features::new(&[], 0, 2).unwrap();
        assert!(matches!(
            check_training(&empty, &[], 2),
            Err(ClassicError::EmptyTrainingSet)
        ));
        // An empty class is only a warning.
        assert_eq!(check_training(&x, &[0, 0], 3).unwrap(), vec![2, 0, 0]);
    }

    #[test]
    fn standardizer_centres_scales_and_round_trips() {
        // Column 0: 1, 3 (mean 2, std 1); column 1 constant 5.
        let data = [1.0, 5.0, 3.0, 5.0];
        let x = Features::new(&data, 2, 2).unwrap();
        let s = Standardizer::fit(&x).unwrap();
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.std, vec![1.0, 1.0]);
        assert_eq!(s.transform(&x).unwrap(), vec![-1.0, 0.0, 1.0, 0.0]);
        let new = [2.0, 7.0];
        let t = s.transform(&Features::new(&new, 1, 2).unwrap()).unwrap();
        assert_eq!(t, vec![0.0, 2.0]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Standardizer>(&json).unwrap(), s);
    }
}
