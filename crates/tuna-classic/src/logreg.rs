//! Multinomial (softmax) logistic regression with an L2 penalty, fitted by [`crate::lbfgs`].
//!
//! The objective follows scikit-learn's `LogisticRegression(penalty="l2", C=c)`:
//!
//! ```text
//! loss(W, b) = sum_i -log softmax(W x_i + b)[y_i]  +  1 / (2 C) * ||W||^2      (b not penalised)
//! ```
//!
//! With 3 or more classes this is exactly scikit-learn's multinomial model (same `coef_` and
//! `intercept_`). With 2 classes the softmax keeps one weight row per class; its decision
//! `w_1 - w_0` equals scikit-learn's binary logistic regression fitted with `2 C`.
//! Work is in `f64` (features stay `f32` and are widened exactly as read); the gradient is
//! summed over fixed 256-row chunks (in parallel when the data is large), always added in chunk
//! order, so the result does not depend on the thread count.

use crate::error::{check_c, Result};
use crate::lbfgs::{minimize, LbfgsOptions};
use crate::matrix::{check_training, Features};
use crate::par::{num_threads, par_map};
use crate::vecops::{argmax, axpy, axpy_f32, dot, dot_f32};
use serde::{Deserialize, Serialize};

/// Rows per gradient chunk (fixed, so the summation order never changes).
const CHUNK: usize = 256;
/// Below this many multiply-adds per evaluation, threads cost more than they save.
const PARALLEL_WORK: usize = 1 << 18;

/// Settings of [`LogisticRegression::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogregParams {
    /// Inverse regularisation strength (scikit-learn's `C`); smaller means a stronger penalty.
    pub c: f64,
    /// Stop when the largest gradient entry of the mean loss falls below this.
    pub tol: f64,
    /// Most L-BFGS iterations.
    pub max_iter: usize,
}

impl Default for LogregParams {
    fn default() -> Self {
        LogregParams {
            c: 1.0,
            tol: 1e-4,
            max_iter: 1000,
        }
    }
}

/// A fitted softmax classifier: `scores = coef x + intercept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    /// Features per row.
    pub n_features: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Weights, `n_classes x n_features` row-major.
    pub coef: Vec<f64>,
    /// One intercept per class (centred to sum to zero).
    pub intercept: Vec<f64>,
    /// L-BFGS iterations used.
    pub n_iter: usize,
    /// Whether the gradient tolerance was reached (or progress stalled at machine precision).
    pub converged: bool,
}

impl LogisticRegression {
    /// Fits on `x` with labels `y` in `0..n_classes`.
    pub fn fit(x: &Features, y: &[usize], n_classes: usize, params: &LogregParams) -> Result<Self> {
        check_training(x, y, n_classes)?;
        Self::fit_checked(x, y, n_classes, params)
    }

    /// [`LogisticRegression::fit`] on data that [`check_training`] has accepted.
    pub(crate) fn fit_checked(
        x: &Features,
        y: &[usize],
        n_classes: usize,
        params: &LogregParams,
    ) -> Result<Self> {
        check_c(params.c)?;
        let (d, k) = (x.cols, n_classes);
        let threads = if x.rows * d * k >= PARALLEL_WORK {
            num_threads()
        } else {
            1
        };
        let problem = Problem {
            x: x.data,
            y,
            d,
            k,
            inv_c: 1.0 / params.c,
            threads,
        };
        let opts = LbfgsOptions {
            tol: params.tol,
            grad_scale: x.rows as f64,
            max_iter: params.max_iter,
            ..LbfgsOptions::default()
        };
        let report = minimize(|t, g| problem.eval(t, g), vec![0.0; k * d + k], &opts);
        if !report.converged() {
            tracing::warn!(
                iterations = report.iterations,
                stop = ?report.stop,
                grad = report.grad_norm,
                tol = params.tol,
                "logistic regression stopped before reaching the gradient tolerance; \
                 standardise the features or raise max_iter"
            );
        }
        let converged = report.converged();
        let mut theta = report.x;
        let mut intercept = theta.split_off(k * d);
        let mean = intercept.iter().sum::<f64>() / k as f64;
        intercept.iter_mut().for_each(|b| *b -= mean);
        Ok(LogisticRegression {
            n_features: d,
            n_classes: k,
            coef: theta,
            intercept,
            n_iter: report.iterations,
            converged,
        })
    }

    /// Class scores `coef x + intercept`, one row of `n_classes` per example.
    pub fn decision_function(&self, x: &Features) -> Result<Vec<Vec<f64>>> {
        x.check_for_model(self.n_features)?;
        Ok((0..x.rows)
            .map(|i| {
                let xi = x.row(i);
                self.intercept
                    .iter()
                    .zip(self.coef.chunks_exact(self.n_features))
                    .map(|(b, w)| b + dot_f32(w, xi))
                    .collect()
            })
            .collect())
    }

    /// Class probabilities (softmax of the scores).
    pub fn predict_proba(&self, x: &Features) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .decision_function(x)?
            .iter()
            .map(|z| softmax(z))
            .collect())
    }

    /// Checks a (loaded) model: at least 2 classes, weight and intercept counts that match, all
    /// values finite.
    pub fn validate(&self) -> Result<()> {
        let rows = self.n_classes;
        crate::error::check_linear(
            self.n_classes,
            rows * self.n_features,
            &self.coef,
            rows,
            &self.intercept,
        )
    }

    /// The most probable class of each row.
    pub fn predict(&self, x: &Features) -> Result<Vec<usize>> {
        Ok(self
            .decision_function(x)?
            .iter()
            .map(|z| argmax(z))
            .collect())
    }
}

/// Numerically stable softmax, returned in `f32`.
pub(crate) fn softmax(z: &[f64]) -> Vec<f32> {
    let m = z.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// The penalised loss over a fixed data set; parameters are `[W (k x d) row-major, b (k)]`.
struct Problem<'a> {
    x: &'a [f32],
    y: &'a [usize],
    d: usize,
    k: usize,
    inv_c: f64,
    threads: usize,
}

impl Problem<'_> {
    /// Loss at `theta`; the gradient goes to `grad`.
    fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let n_chunks = self.y.len().div_ceil(CHUNK);
        let parts = par_map(n_chunks, self.threads, |c| self.chunk(c, theta));
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut loss = 0.0;
        for part in &parts {
            let (g, l) = part.split_at(grad.len());
            axpy(1.0, g, grad);
            loss += l[0];
        }
        let nw = self.k * self.d;
        for (g, w) in grad[..nw].iter_mut().zip(&theta[..nw]) {
            *g += self.inv_c * w;
        }
        loss + 0.5 * self.inv_c * dot(&theta[..nw], &theta[..nw])
    }

    /// Unpenalised gradient (then the loss, as the last entry) over rows of chunk `c`.
    fn chunk(&self, c: usize, theta: &[f64]) -> Vec<f64> {
        let (d, k) = (self.d, self.k);
        let (w, b) = theta.split_at(k * d);
        let mut out = vec![0.0; k * d + k + 1];
        let mut z = vec![0.0; k];
        let mut loss = 0.0;
        let end = ((c + 1) * CHUNK).min(self.y.len());
        for i in c * CHUNK..end {
            let xi = &self.x[i * d..(i + 1) * d];
            for (j, zj) in z.iter_mut().enumerate() {
                *zj = b[j] + dot_f32(&w[j * d..(j + 1) * d], xi);
            }
            let m = z.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            loss += lse - z[self.y[i]];
            for j in 0..k {
                let coef = (z[j] - lse).exp() - if j == self.y[i] { 1.0 } else { 0.0 };
                axpy_f32(coef, xi, &mut out[j * d..(j + 1) * d]);
                out[k * d + j] += coef;
            }
        }
        out[k * d + k] = loss;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn separable_blobs_are_learned() {
        let (x, y) = testdata::blobs(300, 5, 3, 7);
        let f = Features::new(&x, 300, 5).unwrap();
        let m = LogisticRegression::fit(&f, &y, 3, &LogregParams::default()).unwrap();
        assert!(m.converged);
        assert_eq!(testdata::accuracy(&m.predict(&f).unwrap(), &y), 1.0);
        let p = m.predict_proba(&f).unwrap();
        assert!(p.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    }

    #[test]
    fn xor_is_not_linearly_separable() {
        let (x, y) = testdata::xor(400, 3);
        let f = Features::new(&x, 400, 2).unwrap();
        let m = LogisticRegression::fit(&f, &y, 2, &LogregParams::default()).unwrap();
        let acc = testdata::accuracy(&m.predict(&f).unwrap(), &y);
        assert!((0.35..0.65).contains(&acc), "{acc}");
    }

    #[test]
    fn matches_scikit_learn() {
        // scikit-learn 1.9.1 on the data of testdata::reference_multiclass (X, y; the NumPy
        // lines that build it are next to it):
        //   m = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-8, max_iter=10000).fit(X, y)
        //   m.coef_, m.intercept_, m.predict_proba(X[:1])
        let coef = [
            [0.9224265957, -0.2802209974, 0.4478870615],
            [-1.1010191707, 0.7872460762, -1.1048900491],
            [0.1785925749, -0.5070250788, 0.6570029876],
        ];
        let intercept = [-0.1891634009, 0.2287048855, -0.0395414846];
        let proba0 = [0.6276109275, 0.1796744394, 0.1927146331];
        let (x, y) = testdata::reference_multiclass();
        let f = Features::new(&x, 40, 3).unwrap();
        let params = LogregParams {
            c: 1.0,
            tol: 1e-10,
            max_iter: 10_000,
        };
        let m = LogisticRegression::fit(&f, &y, 3, &params).unwrap();
        let coef_err = coef
            .iter()
            .flatten()
            .zip(&m.coef)
            .chain(intercept.iter().zip(&m.intercept))
            .fold(0.0f64, |e, (want, got)| e.max((want - got).abs()));
        assert!(coef_err < 1e-5, "max deviation {coef_err}: {m:?}");
        let p = m
            .predict_proba(&Features::new(&x[..3], 1, 3).unwrap())
            .unwrap();
        let p_err = p[0]
            .iter()
            .zip(proba0)
            .fold(0.0f64, |e, (&got, want)| e.max((got as f64 - want).abs()));
        assert!(p_err < 1e-4, "{p:?}");
        // The default tolerance (1e-4, as scikit-learn's) is within 1e-3.
        let m = LogisticRegression::fit(&f, &y, 3, &LogregParams::default()).unwrap();
        let coarse_err = coef
            .iter()
            .flatten()
            .zip(&m.coef)
            .fold(0.0f64, |e, (want, got)| e.max((want - got).abs()));
        assert!(coarse_err < 1e-3, "default tolerance: {coarse_err}");
    }

    #[test]
    fn two_classes_match_binary_scikit_learn_at_twice_c() {
        // Data of testdata::reference_binary (Xb, yb), scikit-learn 1.9.1:
        //   m = LogisticRegression(C=2.0, solver="lbfgs", tol=1e-8, max_iter=10000).fit(Xb, yb)
        let coef = [1.5759525504, -0.6810650158, 0.5529515296];
        let intercept = -0.6117199679;
        let (x, y) = testdata::reference_binary();
        let f = Features::new(&x, 40, 3).unwrap();
        let params = LogregParams {
            c: 1.0,
            tol: 1e-10,
            max_iter: 10_000,
        };
        let m = LogisticRegression::fit(&f, &y, 2, &params).unwrap();
        for (j, want) in coef.iter().enumerate() {
            let got = m.coef[3 + j] - m.coef[j];
            assert!((got - want).abs() < 1e-5, "coef {j}: {got}");
        }
        let b = m.intercept[1] - m.intercept[0];
        assert!((b - intercept).abs() < 1e-5, "{b}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = testdata::blobs(30, 4, 3, 1);
        let p = Problem {
            x: &x,
            y: &y,
            d: 4,
            k: 3,
            inv_c: 0.7,
            threads: 1,
        };
        let theta: Vec<f64> = (0..15).map(|i| ((i * 7) % 5) as f64 * 0.1 - 0.2).collect();
        let mut g = vec![0.0; 15];
        p.eval(&theta, &mut g);
        let mut scratch = vec![0.0; 15];
        for i in 0..15 {
            let (mut hi, mut lo) = (theta.clone(), theta.clone());
            hi[i] += 1e-6;
            lo[i] -= 1e-6;
            let num = (p.eval(&hi, &mut scratch) - p.eval(&lo, &mut scratch)) / 2e-6;
            assert!(
                (num - g[i]).abs() < 1e-5 * (1.0 + num.abs()),
                "{i}: {num} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn threads_change_nothing() {
        let (x, y) = testdata::blobs(1000, 4, 3, 2);
        let p1 = Problem {
            x: &x,
            y: &y,
            d: 4,
            k: 3,
            inv_c: 1.0,
            threads: 1,
        };
        let p4 = Problem { threads: 4, ..p1 };
        let theta: Vec<f64> = (0..15).map(|i| i as f64 * 0.01).collect();
        let (mut g1, mut g4) = (vec![0.0; 15], vec![0.0; 15]);
        assert_eq!(p1.eval(&theta, &mut g1), p4.eval(&theta, &mut g4));
        assert_eq!(g1, g4);
    }
}
