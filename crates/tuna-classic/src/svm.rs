//! Linear support vector machine, one-vs-rest, with the L2-regularised squared-hinge loss solved
//! in the dual by coordinate descent, as LIBLINEAR's `-s 1` (Hsieh et al., "A Dual Coordinate
//! Descent Method for Large-scale Linear SVM", ICML 2008; `solve_l2r_l1l2_svc` in `linear.cpp`).
//!
//! Each binary problem minimises `1/2 ||[w; b]||^2 + C sum_i max(0, 1 - y_i (w x_i + b))^2`:
//! a constant feature 1 is appended, so the bias is regularised like a weight (LIBLINEAR with
//! `-B 1`, scikit-learn's `LinearSVC(intercept_scaling=1)`). Coordinates are visited in a fresh
//! random order each epoch, inactive ones are shrunk away, and the solver stops when the spread of
//! the projected gradient falls below `tol` (LIBLINEAR's `eps`, 0.1 by default) or after
//! `max_epochs` passes. With 2 classes a single problem is solved (class 1 positive) and the
//! scores are `[-f, f]`, matching scikit-learn; with more, one problem per class.

use crate::error::{check_c, Result};
use crate::matrix::{check_training, Features};
use crate::par::{num_threads, par_map};
use crate::vecops::{argmax, axpy_f32, dot, dot_f32, to_f64};
use serde::{Deserialize, Serialize};
use tuna_core::Rng;

/// Settings of [`LinearSvm::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmParams {
    /// Penalty on the squared hinge losses (LIBLINEAR's and scikit-learn's `C`).
    pub c: f64,
    /// Stop when the projected gradient spread is below this (LIBLINEAR's `eps`).
    pub tol: f64,
    /// Most passes over the data per binary problem.
    pub max_epochs: usize,
    /// Seeds the visiting order; binary problem `j` uses `seed + j`.
    pub seed: u64,
}

impl Default for SvmParams {
    fn default() -> Self {
        SvmParams {
            c: 1.0,
            tol: 0.1,
            max_epochs: 1000,
            seed: 0,
        }
    }
}

/// A fitted linear SVM: one weight row and bias per binary problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearSvm {
    /// Features per row.
    pub n_features: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Weights, `n_problems x n_features` row-major (`n_problems` is 1 for 2 classes).
    pub coef: Vec<f64>,
    /// Bias of each binary problem.
    pub intercept: Vec<f64>,
}

impl LinearSvm {
    /// Fits on `x` with labels `y` in `0..n_classes`.
    pub fn fit(x: &Features, y: &[usize], n_classes: usize, params: &SvmParams) -> Result<Self> {
        check_training(x, y, n_classes)?;
        Self::fit_checked(x, y, n_classes, params)
    }

    /// [`LinearSvm::fit`] on data that [`check_training`] has accepted.
    pub(crate) fn fit_checked(
        x: &Features,
        y: &[usize],
        n_classes: usize,
        params: &SvmParams,
    ) -> Result<Self> {
        check_c(params.c)?;
        let d = x.cols;
        // Squared norms including the bias feature.
        let sq: Vec<f64> = x
            .data
            .chunks_exact(d)
            .map(|r| {
                let r = to_f64(r);
                dot(&r, &r) + 1.0
            })
            .collect();
        let problems = if n_classes == 2 { 1 } else { n_classes };
        let solved = par_map(problems, num_threads(), |j| {
            let positive = if n_classes == 2 { 1 } else { j };
            let ys: Vec<f64> = y
                .iter()
                .map(|&l| if l == positive { 1.0 } else { -1.0 })
                .collect();
            let mut rng = Rng::new(params.seed.wrapping_add(j as u64));
            solve_dual(x.data, d, &sq, &ys, params, &mut rng)
        });
        let mut coef = Vec::with_capacity(problems * d);
        let mut intercept = Vec::with_capacity(problems);
        for (j, (w, b, epochs)) in solved.into_iter().enumerate() {
            if epochs >= params.max_epochs {
                tracing::warn!(
                    problem = j,
                    epochs,
                    "linear SVM reached max_epochs before the tolerance; \
                     standardise the features or lower C"
                );
            }
            coef.extend(w);
            intercept.push(b);
        }
        Ok(LinearSvm {
            n_features: d,
            n_classes,
            coef,
            intercept,
        })
    }

    /// Scores per class: for 2 classes `[-f, f]` with `f = w x + b`, else one score per class.
    pub fn decision_function(&self, x: &Features) -> Result<Vec<Vec<f64>>> {
        x.check_for_model(self.n_features)?;
        let d = self.n_features;
        Ok((0..x.rows)
            .map(|i| {
                let xi = x.row(i);
                let f: Vec<f64> = self
                    .intercept
                    .iter()
                    .enumerate()
                    .map(|(j, b)| b + dot_f32(&self.coef[j * d..(j + 1) * d], xi))
                    .collect();
                if self.n_classes == 2 {
                    vec![-f[0], f[0]]
                } else {
                    f
                }
            })
            .collect())
    }

    /// Checks a (loaded) model: at least 2 classes, weight and intercept counts that match, all
    /// values finite.
    pub fn validate(&self) -> Result<()> {
        let rows = if self.n_classes == 2 {
            1
        } else {
            self.n_classes
        };
        crate::error::check_linear(
            self.n_classes,
            rows * self.n_features,
            &self.coef,
            rows,
            &self.intercept,
        )
    }

    /// The class with the highest score.
    pub fn predict(&self, x: &Features) -> Result<Vec<usize>> {
        Ok(self
            .decision_function(x)?
            .iter()
            .map(|z| argmax(z))
            .collect())
    }
}

/// Dual coordinate descent for one binary problem with targets `ys` in {-1, +1}.
/// Returns the weights, the bias and the number of epochs run.
fn solve_dual(
    xs: &[f32],
    d: usize,
    sq: &[f64],
    ys: &[f64],
    params: &SvmParams,
    rng: &mut Rng,
) -> (Vec<f64>, f64, usize) {
    let l = ys.len();
    // Squared hinge: the dual gains a diagonal 1 / (2C) and alpha has no upper bound.
    let diag = 0.5 / params.c;
    let qd: Vec<f64> = sq.iter().map(|s| s + diag).collect();
    let mut alpha = vec![0.0f64; l];
    let (mut w, mut bias) = (vec![0.0f64; d], 0.0f64);
    let mut index: Vec<usize> = (0..l).collect();
    let mut active = l;
    // LIBLINEAR also tracks the previous minimum projected gradient, but only to shrink
    // coordinates at the upper bound, which the squared hinge (no upper bound) never has.
    let mut pg_max_old = f64::INFINITY;
    let mut epochs = 0;
    while epochs < params.max_epochs {
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        rng.shuffle(&mut index[..active]);
        let mut s = 0;
        while s < active {
            let i = index[s];
            let xi = &xs[i * d..(i + 1) * d];
            let g = ys[i] * (dot_f32(&w, xi) + bias) - 1.0 + alpha[i] * diag;
            let pg = if alpha[i] == 0.0 {
                if g > pg_max_old {
                    // Shrink: this coordinate is at its bound and likely to stay there.
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                g.min(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let delta = (alpha[i] - old) * ys[i];
                axpy_f32(delta, xi, &mut w);
                bias += delta;
            }
            s += 1;
        }
        epochs += 1;
        if pg_max - pg_min <= params.tol {
            if active == l {
                break;
            }
            // Converged on the shrunk set: check again on everything.
            active = l;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    (w, bias, epochs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn separable_blobs_are_learned() {
        for k in [2, 4] {
            let (x, y) = testdata::blobs(200, 6, k, 11);
            let f = Features::new(&x, 200, 6).unwrap();
            let m = LinearSvm::fit(&f, &y, k, &SvmParams::default()).unwrap();
            assert_eq!(
                testdata::accuracy(&m.predict(&f).unwrap(), &y),
                1.0,
                "k={k}"
            );
            assert_eq!(m.intercept.len(), if k == 2 { 1 } else { k });
        }
    }

    #[test]
    fn matches_scikit_learn_linear_svc() {
        // scikit-learn 1.9.1 (LIBLINEAR) on the data of testdata::reference_binary (Xb, yb):
        //   s = LinearSVC(C=1.0, loss="squared_hinge", dual=True, tol=1e-10,
        //                 max_iter=1000000).fit(Xb, yb)
        //   s.coef_, s.intercept_, s.decision_function(Xb[[0, 1, 7, 22, 39]])
        let coef = [0.8141370418, -0.4073023238, 0.4047054525];
        let intercept = -0.2800598444;
        let decision = [
            (0, 0.0899223049),
            (1, 0.8457168478),
            (7, -0.3300899536),
            (22, -0.2277450647),
            (39, 0.8765436155),
        ];
        let (x, y) = testdata::reference_binary();
        let f = Features::new(&x, 40, 3).unwrap();
        let params = SvmParams {
            tol: 1e-8,
            max_epochs: 100_000,
            ..SvmParams::default()
        };
        let m = LinearSvm::fit(&f, &y, 2, &params).unwrap();
        let coef_err = coef
            .iter()
            .zip(&m.coef)
            .fold(0.0f64, |e, (want, got)| e.max((want - got).abs()));
        assert!(coef_err < 1e-5, "max deviation {coef_err}: {m:?}");
        assert!(
            (m.intercept[0] - intercept).abs() < 1e-5,
            "{:?}",
            m.intercept
        );
        let scores = m.decision_function(&f).unwrap();
        for (row, want) in decision {
            let got = scores[row][1];
            assert!(
                (got - want).abs() < 1e-5 && scores[row][0] == -got,
                "row {row}: {got}"
            );
        }
        // LIBLINEAR's default tolerance (0.1) already lands within 1e-2.
        let m = LinearSvm::fit(&f, &y, 2, &SvmParams::default()).unwrap();
        let scores = m.decision_function(&f).unwrap();
        for (row, want) in decision {
            assert!((scores[row][1] - want).abs() < 1e-2, "row {row}");
        }
    }

    #[test]
    fn same_seed_same_model_and_seed_matters_little() {
        let (x, y) = testdata::blobs(150, 5, 3, 4);
        let f = Features::new(&x, 150, 5).unwrap();
        let p = SvmParams::default();
        let a = LinearSvm::fit(&f, &y, 3, &p).unwrap();
        assert_eq!(a, LinearSvm::fit(&f, &y, 3, &p).unwrap());
        let b = LinearSvm::fit(&f, &y, 3, &SvmParams { seed: 9, ..p }).unwrap();
        assert_eq!(a.predict(&f).unwrap(), b.predict(&f).unwrap());
    }

    #[test]
    fn rejects_bad_c_and_width() {
        let (x, y) = testdata::blobs(20, 3, 2, 1);
        let f = Features::new(&x, 20, 3).unwrap();
        let bad = SvmParams {
            c: 0.0,
            ..SvmParams::default()
        };
        assert!(LinearSvm::fit(&f, &y, 2, &bad).is_err());
        let m = LinearSvm::fit(&f, &y, 2, &SvmParams::default()).unwrap();
        let narrow = Features::new(&x[..20], 10, 2).unwrap();
        assert!(m.predict(&narrow).is_err());
    }
}
