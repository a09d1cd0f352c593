//! A frozen linear layer and the low-rank updates of column ranges of its output as one op
//! with its own backward: `y = x W^T + b`, then for each update
//! `y[:, cols] += dropout(x) A^T B^T * scale` (LoRA's form).
//!
//! Composed of tensor ops, each update is a dropout mask multiply, two thin products, a scale
//! and an add in the forward, and the same passes again with a sum of the input's gradients
//! from both branches in the backward, each into a fresh buffer. Here the updates are added
//! into the base product's output, and the input's gradient `g W + sum mask * (dh A)` is
//! formed in one buffer. The updates' matrices enter the op packed into one vector, so that
//! any number of updates (q and v of a fused q/k/v product) fit one op; `cat`'s backward
//! hands each matrix its gradient.

use crate::dropout::{keep_mask, mask_seed};
use crate::gelu::contiguous_f32;
use crate::product::{cpu, cpu_parts, product, product_add, product_to, with_mat, Mat};
use crate::weight::Weight;
use candle_core::{CpuStorage, CustomOp2, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const NAME: &str = "tuna-linear-low-rank";

/// A low-rank update `dropout(x) A^T B^T * scale` of a layer's output.
#[derive(Debug, Clone)]
pub struct LowRank {
    /// (r, in).
    pub a: Tensor,
    /// (out, r).
    pub b: Tensor,
    pub scale: f64,
    /// Dropout on the update's input, in training.
    pub dropout: f32,
}

/// Where one update lives: its output columns and its matrices in the packed vector.
struct Part {
    col: usize,
    out: usize,
    rank: usize,
    a_at: usize,
    b_at: usize,
    scale: f32,
    /// Keep-scales (N, in) when dropout is active.
    mask: Option<Vec<f32>>,
}

struct LinearLowRank {
    weight: Weight,
    bias: Option<Tensor>,
    parts: Vec<Part>,
}

/// True when [`linear_low_rank`] can run: the base weight and bias frozen, `x` 2-D, everything
/// f32 on the CPU, some operand tracking a gradient, and the updates' shapes fitting.
pub fn applies(
    x: &Tensor,
    weight: &Weight,
    bias: Option<&Tensor>,
    ups: &[(usize, &LowRank)],
) -> bool {
    let mut all = vec![x];
    all.extend(weight.tensor());
    all.extend(bias);
    all.extend(ups.iter().flat_map(|(_, u)| [&u.a, &u.b]));
    let frozen = !weight.track_op() && !bias.is_some_and(|b| b.track_op());
    let tracked = x.track_op() || ups.iter().any(|(_, u)| u.a.track_op() || u.b.track_op());
    let (Ok((_, i)), Ok((o, wi))) = (x.dims2(), weight.dims2()) else {
        return false;
    };
    let fits = i == wi
        && ups.iter().all(|(c, u)| match (u.a.dims2(), u.b.dims2()) {
            (Ok((r, ai)), Ok((bo, br))) => ai == i && br == r && c + bo <= o,
            _ => false,
        });
    if !(frozen && tracked && fits) {
        return false;
    }
    if all.iter().any(|t| crate::fallback::off_kernel(t)) {
        crate::fallback::note(NAME, x, "candle's products and adds");
        return false;
    }
    true
}

/// `x W^T + b` (N, out) with each update `(col, u)` added to the columns from `col` on; `x`
/// (N, in). Gradients for `x` and the updates' matrices (never for `W` and `b`).
pub fn linear_low_rank(
    x: &Tensor,
    weight: &Weight,
    bias: Option<&Tensor>,
    ups: &[(usize, &LowRank)],
) -> Result<Tensor> {
    let (n, i) = x.dims2()?;
    let mut packed = Vec::with_capacity(ups.len() * 2);
    let (mut parts, mut at) = (Vec::with_capacity(ups.len()), 0);
    for (col, u) in ups {
        let (rank, out) = (u.a.dim(0)?, u.b.dim(0)?);
        let mask = mask_seed(u.dropout).map(|s| keep_mask(s, n, i, u.dropout));
        parts.push(Part {
            col: *col,
            out,
            rank,
            a_at: at,
            b_at: at + rank * i,
            scale: u.scale as f32,
            mask,
        });
        at += rank * (i + out);
        packed.push(u.a.flatten_all()?);
        packed.push(u.b.flatten_all()?);
    }
    let params = match packed.is_empty() {
        true => Tensor::zeros(1, candle_core::DType::F32, x.device())?,
        false => Tensor::cat(&packed, 0)?,
    };
    // The quantised kernels read the input as contiguous rows.
    let x = match weight.is_quantised() {
        true => x.contiguous()?,
        false => x.clone(),
    };
    let op = LinearLowRank {
        weight: weight.clone(),
        bias: bias.map(|b| b.contiguous()).transpose()?,
        parts,
    };
    x.apply_op2(&params, op)
}

/// `x * mask` as a new (N, in) buffer, or `x` itself without a mask.
fn masked<'a>(x: Mat<'a>, mask: Option<&[f32]>, buf: &'a mut Vec<f32>) -> Result<Mat<'a>> {
    let Some(m) = mask else { return Ok(x) };
    let (n, i) = x.dims();
    if m.len() != n * i {
        candle_core::bail!("low-rank update: the dropout mask does not fit the input")
    }
    let fill = |out: &mut [f32]| {
        out.par_chunks_mut(i.max(1))
            .zip(m.par_chunks(i.max(1)))
            .enumerate()
            .for_each(|(r, (row, mr))| match x.row(r) {
                Some(xr) => row
                    .iter_mut()
                    .zip(xr.iter().zip(mr))
                    .for_each(|(o, (v, k))| *o = v * k),
                None => row
                    .iter_mut()
                    .zip(mr)
                    .enumerate()
                    .for_each(|(c, (o, k))| *o = x.at(r, c) * k),
            })
    };
    // SAFETY: both arms write every value of their row, and the rows cover the buffer.
    *buf = unsafe { crate::fresh::filled_by(n * i, fill) };
    Mat::from_slice(buf, (n, i), (i, 1))
}

impl LinearLowRank {
    /// An update's A (r, in) and B (out, r) from the packed vector.
    fn mats<'a>(&self, p: &Part, v: &'a [f32], i: usize) -> Result<(Mat<'a>, Mat<'a>)> {
        let a = Mat::from_slice(&v[p.a_at..], (p.rank, i), (i, 1))?;
        let b = Mat::from_slice(&v[p.b_at..], (p.out, p.rank), (p.rank, 1))?;
        Ok((a, b))
    }

    /// `h = xd A^T` (N, r) on the calling thread (r is small).
    fn thin(xd: Mat, a: Mat) -> Result<Vec<f32>> {
        let (n, r) = (xd.dims().0, a.dims().0);
        let mut h = vec![0f32; n * r];
        product_to(&mut h, r, xd, a.t(), 1.0, false)?;
        Ok(h)
    }
}

impl CustomOp2 for LinearLowRank {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = Mat::new(s1, l1, NAME)?;
        let v = contiguous_f32(s2, l2, NAME)?;
        let (n, i) = x.dims();
        let bias: Option<Vec<f32>> = self.bias.as_ref().map(|b| b.to_vec1()).transpose()?;
        let mut y = match &self.weight {
            Weight::Dense(w) => with_mat(w, NAME, |w| product(x, w.t(), bias.as_deref()))?,
            Weight::Quant(q) => {
                let mut y = q.matmul_t(contiguous_f32(s1, l1, NAME)?, n)?;
                if let Some(b) = &bias {
                    y.chunks_exact_mut(b.len().max(1))
                        .for_each(|r| r.iter_mut().zip(b).for_each(|(v, b)| *v += b));
                }
                y
            }
        };
        let out = self.weight.dims2()?.0;
        let mut buf = Vec::new();
        for p in &self.parts {
            let (a, b) = self.mats(p, v, i)?;
            let xd = masked(x, p.mask.as_deref(), &mut buf)?;
            let h = Self::thin(xd, a)?;
            let hm = Mat::from_slice(&h, (n, p.rank), (p.rank, 1))?;
            product_add(&mut y[p.col..], out, hm, b.t(), p.scale)?;
        }
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xs, xl) = cpu_parts(x, NAME)?;
        let (ps, pl) = cpu_parts(params, NAME)?;
        let xm = Mat::new(cpu(&xs), &xl, NAME)?;
        let v = contiguous_f32(cpu(&ps), &pl, NAME)?;
        let (n, i) = xm.dims();
        let cpu_dev = &Device::Cpu;
        let mut dx = match (x.track_op(), &self.weight) {
            (false, _) => None,
            (true, Weight::Dense(w)) => Some(with_mat(g, NAME, |gm| {
                with_mat(w, NAME, |w| product(gm, w, None))
            })?),
            (true, Weight::Quant(q)) => {
                let g = g.contiguous()?;
                let (gs, gl) = cpu_parts(&g, NAME)?;
                Some(q.matmul(contiguous_f32(cpu(&gs), &gl, NAME)?, n)?)
            }
        };
        with_mat(g, NAME, |gm| {
            let mut dp = params.track_op().then(|| vec![0f32; v.len()]);
            let mut buf = Vec::new();
            for p in &self.parts {
                let (a, b) = self.mats(p, v, i)?;
                let gp = gm.narrow_cols(p.col, p.out)?;
                // dh = scale * gp B (N, r): the gradient of h = xd A^T.
                let mut dh = vec![0f32; n * p.rank];
                product_to(&mut dh, p.rank, gp, b, p.scale, false)?;
                let dhm = Mat::from_slice(&dh, (n, p.rank), (p.rank, 1))?;
                let xd = masked(xm, p.mask.as_deref(), &mut buf)?;
                if let Some(dp) = &mut dp {
                    let h = Self::thin(xd, a)?;
                    let hm = Mat::from_slice(&h, (n, p.rank), (p.rank, 1))?;
                    // dA = dh^T xd (r, in); dB = scale * gp^T h (out, r).
                    product_to(&mut dp[p.a_at..], i, dhm.t(), xd, 1.0, false)?;
                    product_to(&mut dp[p.b_at..], p.rank, gp.t(), hm, p.scale, false)?;
                }
                if let Some(dx) = &mut dx {
                    add_input_grad(dx, (&dh, p.rank), a, p.mask.as_deref())?;
                }
            }
            let dx = dx
                .map(|d| Tensor::from_vec(d, (n, i), cpu_dev))
                .transpose()?;
            let dp = dp
                .map(|d| Tensor::from_vec(d, v.len(), cpu_dev))
                .transpose()?;
            Ok((dx, dp))
        })
    }
}

/// `dx += mask * (dh A)`: straight into `dx` without a mask, through per-row scratch with one.
/// `dh`: (N, rank) row-major.
fn add_input_grad(
    dx: &mut [f32],
    (dh, rank): (&[f32], usize),
    a: Mat,
    mask: Option<&[f32]>,
) -> Result<()> {
    let i = a.dims().1;
    let Some(mask) = mask else {
        let dhm = Mat::from_slice(dh, (dh.len() / rank.max(1), rank), (rank, 1))?;
        return product_add(dx, i, dhm, a, 1.0);
    };
    const ROWS: usize = 32;
    dx.par_chunks_mut(ROWS * i.max(1))
        .zip(mask.par_chunks(ROWS * i.max(1)))
        .zip(dh.par_chunks(ROWS * rank.max(1)))
        .try_for_each(|((dxc, mc), dhc)| -> Result<()> {
            let rows = dxc.len() / i.max(1);
            let mut t = vec![0f32; rows * i];
            let dhm = Mat::from_slice(dhc, (rows, rank), (rank, 1))?;
            product_to(&mut t, i, dhm, a, 1.0, false)?;
            dxc.iter_mut()
                .zip(&t)
                .zip(mc)
                .for_each(|((d, v), m)| *d += v * m);
            Ok(())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropout::{dropout, TrainScope};
    use candle_core::{backprop::GradStore, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    /// The composition the op replaces: base product, then each update padded into its columns.
    fn composed(x: &Tensor, w: &Tensor, b: &Tensor, ups: &[(usize, &LowRank)]) -> Result<Tensor> {
        let out = w.dim(0)?;
        let mut y = x.matmul(&w.t()?)?.broadcast_add(b)?;
        for (col, u) in ups {
            let d = (dropout(x, u.dropout)?
                .matmul(&u.a.t()?)?
                .matmul(&u.b.t()?)?
                * u.scale)?;
            let o = d.dim(1)?;
            y = (y + d.pad_with_zeros(1, *col, out - col - o)?)?;
        }
        Ok(y)
    }

    /// Two updates on column ranges of one product (q and v of a fused q/k/v), with and without
    /// dropout, with and without the input's gradient: the same output and gradients as the
    /// composition, and the same dropout masks.
    #[test]
    fn matches_the_composition_in_value_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = tuna_core::Rng::new(3);
        let mut t = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (n, i, out, r) = (70, 24, 36, 4);
        let xv = Var::from_vec(t(n * i), (n, i), &dev)?;
        let w = Tensor::from_vec(t(out * i), (out, i), &dev)?;
        let b = Tensor::from_vec(t(out), out, &dev)?;
        let probe = Tensor::from_vec(t(n * out), (n, out), &dev)?;
        let vars: Vec<Var> = [(r, i), (12, r), (r, i), (12, r)]
            .iter()
            .map(|s| Var::from_vec(t(s.0 * s.1), *s, &dev))
            .collect::<Result<_>>()?;
        for (p, track_x) in [(0.0, true), (0.3, true), (0.3, false), (0.0, false)] {
            let up = |k: usize| LowRank {
                a: vars[2 * k].as_tensor().clone(),
                b: vars[2 * k + 1].as_tensor().clone(),
                scale: 0.5 + k as f64,
                dropout: p,
            };
            let (u0, u1) = (up(0), up(1));
            let ups = [(0, &u0), (24, &u1)];
            let x = if track_x {
                xv.as_tensor().clone()
            } else {
                xv.as_tensor().detach()
            };
            assert!(applies(&x, &Weight::Dense(w.clone()), Some(&b), &ups));
            let run = |f: &dyn Fn() -> Result<Tensor>| -> Result<(Tensor, GradStore)> {
                let _scope = TrainScope::new(9);
                let y = f()?;
                let g = (&y * &probe)?.sum_all()?.backward()?;
                Ok((y, g))
            };
            let (y1, g1) = run(&|| linear_low_rank(&x, &Weight::Dense(w.clone()), Some(&b), &ups))?;
            let (y2, g2) = run(&|| composed(&x, &w, &b, &ups))?;
            assert!(max_diff(&y1, &y2)? < 1e-5, "p {p}: output");
            if p > 0.0 {
                let (y0, _) = run(&|| composed(&x, &w, &b, &[]))?;
                assert!(max_diff(&y1, &y0)? > 1e-3, "the updates changed nothing");
            }
            for v in vars.iter().chain([&xv]) {
                match (g1.get(v), g2.get(v)) {
                    (Some(a), Some(b)) => assert!(max_diff(a, b)? < 1e-4, "p {p}: gradient"),
                    (None, None) => assert!(!track_x),
                    (a, b) => panic!("gradients differ in presence: {a:?} vs {b:?}"),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn refuses_trainable_base_weights_and_misfit_updates() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::zeros((3, 4), candle_core::DType::F32, &dev)?;
        let w = Var::zeros((6, 4), candle_core::DType::F32, &dev)?;
        let u = LowRank {
            a: Var::zeros((2, 4), candle_core::DType::F32, &dev)?
                .as_tensor()
                .clone(),
            b: Tensor::zeros((3, 2), candle_core::DType::F32, &dev)?,
            scale: 1.0,
            dropout: 0.0,
        };
        assert!(applies(
            x.as_tensor(),
            &Weight::Dense(w.as_tensor().detach()),
            None,
            &[(3, &u)]
        ));
        assert!(!applies(
            x.as_tensor(),
            &Weight::Dense(w.as_tensor().clone()),
            None,
            &[(3, &u)]
        ));
        assert!(!applies(
            x.as_tensor(),
            &Weight::Dense(w.as_tensor().detach()),
            None,
            &[(4, &u)]
        ));
        Ok(())
    }
}
