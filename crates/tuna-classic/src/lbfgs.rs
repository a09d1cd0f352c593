//! Limited-memory BFGS for smooth unconstrained minimisation (Nocedal & Wright, *Numerical
//! Optimization*, algorithms 7.4 and 7.5): the two-loop recursion builds the search direction from
//! the last `memory` steps, and a backtracking line search with the Armijo condition picks the
//! step length (starting from 1, shrinking by safeguarded quadratic interpolation).

use crate::vecops::{axpy, dot, inf_norm};
use std::collections::VecDeque;

/// Settings of [`minimize`].
#[derive(Debug, Clone)]
pub struct LbfgsOptions {
    /// Number of past steps remembered (10 is the usual choice).
    pub memory: usize,
    /// Stop when `max |grad_i| / grad_scale < tol`.
    pub tol: f64,
    /// Divides the gradient before the tolerance test (e.g. the number of examples, so that the
    /// test is on a mean loss as in scikit-learn).
    pub grad_scale: f64,
    /// Most iterations (accepted steps).
    pub max_iter: usize,
    /// Most function evaluations inside one line search.
    pub max_linesearch: usize,
    /// Also stop when an iteration lowers the objective by at most
    /// `ftol * max(|f_old|, |f|, 1)` (SciPy's L-BFGS-B criterion; 0 disables it).
    pub ftol: f64,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            memory: 10,
            tol: 1e-4,
            grad_scale: 1.0,
            max_iter: 1000,
            max_linesearch: 40,
            ftol: 64.0 * f64::EPSILON,
        }
    }
}

/// Outcome of [`minimize`].
#[derive(Debug, Clone)]
pub struct LbfgsReport {
    /// The final point.
    pub x: Vec<f64>,
    /// Objective value at `x`.
    pub f: f64,
    /// `max |grad_i| / grad_scale` at `x`.
    pub grad_norm: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Objective evaluations, line searches included.
    pub evaluations: usize,
    /// Why the iterations stopped.
    pub stop: Stop,
}

/// Why [`minimize`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The gradient test was met.
    Gradient,
    /// An iteration made (almost) no progress: the `ftol` test.
    NoProgress,
    /// No step along the search direction lowered the objective (precision exhausted).
    LineSearch,
    /// `max_iter` iterations were run.
    MaxIter,
    /// The objective became NaN or infinite.
    NonFinite,
}

impl LbfgsReport {
    /// Whether the result is a minimum to the precision asked for or attainable (gradient or
    /// `ftol` test met).
    pub fn converged(&self) -> bool {
        matches!(self.stop, Stop::Gradient | Stop::NoProgress)
    }
}

/// Armijo sufficient-decrease constant.
const C1: f64 = 1e-4;

/// Minimises `objective`, which must write the gradient at `x` into its second argument and
/// return the value, starting from `x0`.
pub fn minimize<F>(mut objective: F, x0: Vec<f64>, opts: &LbfgsOptions) -> LbfgsReport
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let scale = if opts.grad_scale > 0.0 {
        opts.grad_scale
    } else {
        1.0
    };
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut f = objective(&x, &mut g);
    let mut evaluations = 1;
    // (s, y, 1 / (s . y)), oldest first.
    let mut history: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(opts.memory);
    let (mut x_new, mut g_new, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut alpha = vec![0.0; opts.memory.max(1)];
    let mut iterations = 0;
    let stop = loop {
        if !f.is_finite() {
            break Stop::NonFinite;
        }
        if inf_norm(&g) / scale < opts.tol {
            break Stop::Gradient;
        }
        if iterations >= opts.max_iter {
            break Stop::MaxIter;
        }
        two_loop(&g, &history, &mut alpha, &mut d);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 || !slope.is_finite() {
            // Not a descent direction (can happen after numerical trouble): restart.
            history.clear();
            d.iter_mut().zip(&g).for_each(|(di, gi)| *di = -gi);
            slope = -dot(&g, &g);
        }
        // First step of a fresh memory: scale so the first trial moves x by at most ~1.
        let mut step = if history.is_empty() {
            1.0f64.min(1.0 / inf_norm(&d).max(f64::MIN_POSITIVE))
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..opts.max_linesearch {
            x_new.iter_mut().zip(&x).for_each(|(xn, xi)| *xn = *xi);
            axpy(step, &d, &mut x_new);
            let f_try = objective(&x_new, &mut g_new);
            evaluations += 1;
            if f_try.is_finite() && f_try <= f + C1 * step * slope {
                accepted = Some(f_try);
                break;
            }
            // Minimiser of the quadratic through f, slope and f_try, kept in [0.1, 0.5] * step.
            let quad = if f_try.is_finite() {
                -slope * step * step / (2.0 * (f_try - f - slope * step))
            } else {
                0.1 * step
            };
            step = quad.clamp(0.1 * step, 0.5 * step);
        }
        let Some(f_new) = accepted else {
            if history.is_empty() {
                break Stop::LineSearch;
            }
            history.clear();
            continue;
        };
        iterations += 1;
        // s = x_new - x, y = g_new - g, reusing the oldest pair's buffers when memory is full.
        let recycled = if history.len() >= opts.memory.max(1) {
            history.pop_front()
        } else {
            None
        };
        let (mut s, mut y) = match recycled {
            Some((s, y, _)) => (s, y),
            None => (vec![0.0; n], vec![0.0; n]),
        };
        for i in 0..n {
            s[i] = x_new[i] - x[i];
            y[i] = g_new[i] - g[i];
        }
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y) && sy > 0.0 {
            history.push_back((s, y, 1.0 / sy));
        }
        let f_old = f;
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        f = f_new;
        let progress = f_old - f;
        if progress <= opts.ftol * f_old.abs().max(f.abs()).max(1.0)
            && inf_norm(&g) / scale >= opts.tol
        {
            break Stop::NoProgress;
        }
    };
    LbfgsReport {
        grad_norm: inf_norm(&g) / scale,
        x,
        f,
        iterations,
        evaluations,
        stop,
    }
}

/// Writes `d = -H g`, with `H` the L-BFGS inverse-Hessian estimate from `history`.
fn two_loop(
    g: &[f64],
    history: &VecDeque<(Vec<f64>, Vec<f64>, f64)>,
    alpha: &mut [f64],
    d: &mut [f64],
) {
    d.copy_from_slice(g);
    for (k, (s, y, rho)) in history.iter().enumerate().rev() {
        alpha[k] = rho * dot(s, d);
        axpy(-alpha[k], y, d);
    }
    if let Some((s, y, _)) = history.back() {
        let gamma = dot(s, y) / dot(y, y);
        d.iter_mut().for_each(|v| *v *= gamma);
    }
    for (k, (s, y, rho)) in history.iter().enumerate() {
        let beta = rho * dot(y, d);
        axpy(alpha[k] - beta, s, d);
    }
    d.iter_mut().for_each(|v| *v = -*v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
        // Sum over consecutive pairs: 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2.
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut f = 0.0;
        for i in 0..x.len() - 1 {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            f += 100.0 * a * a + b * b;
            g[i] += -400.0 * a * x[i] - 2.0 * b;
            g[i + 1] += 200.0 * a;
        }
        f
    }

    #[test]
    fn minimises_rosenbrock() {
        let opts = LbfgsOptions {
            tol: 1e-8,
            ftol: 0.0,
            ..LbfgsOptions::default()
        };
        let r = minimize(rosenbrock, vec![-1.2, 1.0], &opts);
        assert_eq!(r.stop, Stop::Gradient, "{r:?}");
        assert!(r.x.iter().all(|v| (v - 1.0).abs() < 1e-6), "{r:?}");
        // A 10-dimensional version from a harder start.
        let r = minimize(rosenbrock, vec![-1.5; 10], &opts);
        assert!(r.stop == Stop::Gradient && r.f < 1e-12, "{r:?}");
        // With SciPy's default ftol the run ends as soon as progress stalls, still at (1, 1).
        let r = minimize(rosenbrock, vec![-1.2, 1.0], &LbfgsOptions::default());
        assert!(
            r.converged() && r.x.iter().all(|v| (v - 1.0).abs() < 1e-3),
            "{r:?}"
        );
        assert!(r.x.iter().all(|v| (v - 1.0).abs() < 1e-5), "{r:?}");
    }

    #[test]
    fn solves_a_quadratic_exactly_enough() {
        // f = sum_i (i + 1) (x_i - i)^2 / 2
        let quad = |x: &[f64], g: &mut [f64]| {
            let mut f = 0.0;
            for (i, (xi, gi)) in x.iter().zip(g.iter_mut()).enumerate() {
                let w = (i + 1) as f64;
                *gi = w * (xi - i as f64);
                f += 0.5 * w * (xi - i as f64).powi(2);
            }
            f
        };
        let opts = LbfgsOptions {
            tol: 1e-10,
            ftol: 0.0,
            ..Default::default()
        };
        let r = minimize(quad, vec![0.0; 20], &opts);
        assert!(r.stop == Stop::Gradient && r.iterations < 100, "{r:?}");
        assert!(r
            .x
            .iter()
            .enumerate()
            .all(|(i, v)| (v - i as f64).abs() < 1e-8));
    }

    #[test]
    fn already_optimal_start_does_nothing() {
        let r = minimize(rosenbrock, vec![1.0, 1.0], &LbfgsOptions::default());
        assert!(r.stop == Stop::Gradient && r.iterations == 0 && r.evaluations == 1);
    }
}
