//! The row loops of layer norm and RMS norm in training (forward, and backward with the
//! weight and bias gradients), written so they vectorise.
//!
//! A row's sums (mean, variance, and the backward's two projections) run in 16 lanes, summed
//! at the end in halves (`fast_exp::sum_lanes`): a plain `iter().sum()` is one chain of
//! dependent scalar additions, which made the norms a few percent of a MiniLM step. The copy
//! compiled for AVX-512 or AVX2+FMA is chosen when the binary runs ([`Simd::detect`]).

use crate::fast_exp::{dispatch, sum_lanes, Simd, LANES};

/// Layer norm (`rms == false`, with bias) or RMS norm (`rms == true`) over rows of `d`.
#[derive(Clone, Copy)]
pub(crate) struct NormRows {
    pub eps: f32,
    pub rms: bool,
}

/// The sum of `x`, in lanes.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    sum_lanes(lanes) + chunks.remainder().iter().sum::<f32>()
}

/// The sum of `(x - mean)^2`, in lanes.
#[inline(always)]
fn squares(x: &[f32], mean: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += (v - mean) * (v - mean);
        }
    }
    let rest: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    sum_lanes(lanes) + rest
}

/// Mean and 1/std of a row (`rms`: no mean subtraction).
#[inline(always)]
fn stats(x: &[f32], eps: f32, rms: bool) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = if rms { 0.0 } else { sum(x) / n };
    (mean, 1.0 / (squares(x, mean) / n + eps).sqrt())
}

#[inline(always)]
fn forward_loop(p: NormRows, x: &[f32], w: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
    let d = w.len();
    for (o, x) in out.chunks_mut(d).zip(x.chunks(d)) {
        let (mean, rstd) = stats(x, p.eps, p.rms);
        match b {
            Some(b) => {
                for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (x - mean) * rstd * w + b;
                }
            }
            None => {
                for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                    *o = (x - mean) * rstd * w;
                }
            }
        }
    }
}

/// One row's backward: writes dx to `o`, adds to `acc` (dw then db, 2d) and returns nothing.
#[inline(always)]
fn backward_row(p: NormRows, (x, w, g): (&[f32], &[f32], &[f32]), o: &mut [f32], acc: &mut [f32]) {
    let d = w.len();
    let (mean, rstd) = stats(x, p.eps, p.rms);
    let (dw, db) = acc.split_at_mut(d);
    let (mut m1, mut m2) = ([0f32; LANES], [0f32; LANES]);
    // Whole lanes as arrays, so the loop has no bounds checks and vectorises.
    let (xs, xr) = x.as_chunks::<LANES>();
    let (gs, gr) = g.as_chunks::<LANES>();
    let (ws, wr) = w.as_chunks::<LANES>();
    let (dws, dwr) = dw.as_chunks_mut::<LANES>();
    let (dbs, dbr) = db.as_chunks_mut::<LANES>();
    let lanes = xs.iter().zip(gs).zip(ws).zip(dws.iter_mut().zip(dbs));
    for (((x, g), w), (dw, db)) in lanes {
        for l in 0..LANES {
            let xhat = (x[l] - mean) * rstd;
            let gw = g[l] * w[l];
            m1[l] += gw;
            m2[l] += gw * xhat;
            dw[l] += g[l] * xhat;
            db[l] += g[l];
        }
    }
    let (mut s1, mut s2) = (0f32, 0f32);
    let rest = xr.iter().zip(gr).zip(wr).zip(dwr.iter_mut().zip(dbr));
    for (((&x, &g), &w), (dw, db)) in rest {
        let xhat = (x - mean) * rstd;
        let gw = g * w;
        s1 += gw;
        s2 += gw * xhat;
        *dw += g * xhat;
        *db += g;
    }
    let m1 = (sum_lanes(m1) + s1) / d as f32;
    let m2 = (sum_lanes(m2) + s2) / d as f32;
    let m1 = if p.rms { 0.0 } else { m1 };
    for (((o, &x), &g), &w) in o.iter_mut().zip(x).zip(g).zip(w) {
        let xhat = (x - mean) * rstd;
        *o = rstd * (g * w - m1 - xhat * m2);
    }
}

#[inline(always)]
fn backward_loop(p: NormRows, (x, w, g): (&[f32], &[f32], &[f32]), o: &mut [f32], acc: &mut [f32]) {
    let d = w.len();
    for ((o, x), g) in o.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
        backward_row(p, (x, w, g), o, acc);
    }
}

impl NormRows {
    /// The normalised rows of `x` (rows of `w.len()`) into `out`.
    pub fn forward(self, x: &[f32], w: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
        let p = self;
        dispatch!(
            Simd::detect(),
            (),
            |p: NormRows, x: &[f32], w: &[f32], b: Option<&[f32]>, out: &mut [f32]| {
                forward_loop(p, x, w, b, out)
            }
        )
    }

    /// dx of the rows of `x` given their output gradient `g` into `dx`; the rows' dw and db
    /// are added to `acc` (2 x `w.len()`).
    pub fn backward(self, x: &[f32], w: &[f32], g: &[f32], dx: &mut [f32], acc: &mut [f32]) {
        let p = self;
        dispatch!(
            Simd::detect(),
            (),
            |p: NormRows, x: &[f32], w: &[f32], g: &[f32], dx: &mut [f32], acc: &mut [f32]| {
                backward_loop(p, (x, w, g), dx, acc)
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane sums against f64 sums, on rows that are and are not whole lanes.
    #[test]
    fn stats_match_f64() {
        for d in [1, 7, 16, 37, 384] {
            let x: Vec<f32> = (0..d)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3 + 2.0)
                .collect();
            let n = d as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let (m, r) = stats(&x, 1e-5, false);
            assert!((m as f64 - mean).abs() < 1e-5, "mean {m} vs {mean}");
            let want = 1.0 / (var + 1e-5).sqrt();
            assert!((r as f64 - want).abs() < 1e-4 * want, "rstd {r} vs {want}");
        }
    }
}
