//! Scaled dot-product attention as one op with a hand-written backward, for training on the
//! CPU (f32).
//!
//! Composed of tensor ops, attention keeps the (B, H, Tq, Tk) scores and probabilities of every
//! layer in the gradient graph, copies the heads into place before and after, and sums each
//! node's gradient from fresh buffers. Here each batch row is one work item: per head, the
//! scores are formed, masked and normalised in a scratch buffer, and the output is written
//! straight into the merged-head layout (B, Tq, H, D). Nothing of size Tq x Tk is kept; the
//! backward recomputes the probabilities per head (one more small product) and writes the three
//! gradients in place. Inputs may be strided views (heads split without a copy), and key/value
//! heads may be fewer than query heads (grouped-query attention without repeating them).

use crate::fast_exp::{softmax_rows, Simd};
use crate::product::{cpu, cpu_parts, product_to, Mat};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// The op's name in errors.
const OP: &str = "fused attention";

/// The (B, H, T, D) dimensions of `t`: its own when 4-D, or (B, T, H*D) split into `heads`.
fn head_dims(t: &Tensor, heads: Option<usize>) -> Option<[usize; 4]> {
    match (heads, t.dims()) {
        (None, &[b, h, n, d]) => Some([b, h, n, d]),
        (Some(h), &[b, n, hd]) if h > 0 && hd % h == 0 => Some([b, h, n, hd / h]),
        _ => None,
    }
}

/// True when the fused op can run: CPU f32 inputs of matching shapes (4-D heads, or 3-D rows
/// with `heads` query heads and `kv_heads` key/value heads).
fn fits(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    heads: Option<(usize, usize)>,
) -> bool {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    let (Some([b, h, _, d]), Some([bk, hk, tk, dk])) = (
        head_dims(q, heads.map(|h| h.0)),
        head_dims(k, heads.map(|h| h.1)),
    ) else {
        return false;
    };
    cpu_f32(q)
        && cpu_f32(k)
        && cpu_f32(v)
        && mask.is_none_or(|m| cpu_f32(m) && !m.track_op())
        && v.dims() == k.dims()
        && b == bk
        && d == dk
        && hk > 0
        && h % hk == 0
        && tk > 0
}

/// True when [`attention`] can run on these inputs.
pub fn supported(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> bool {
    fits(q, k, v, mask, None)
}

/// True when [`attention_rows`] can run on these inputs.
pub fn supported_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: (usize, usize),
    mask: Option<&Tensor>,
) -> bool {
    fits(q, k, v, mask, Some(heads))
}

/// `softmax(q k^T / sqrt(D) + mask) v` with a backward. `q`: (B, H, Tq, D); `k`, `v`:
/// (B, Hkv, Tk, D) with H a multiple of Hkv (query head `i` uses key/value head `i / (H / Hkv)`);
/// `mask`: additive, broadcastable to (B, H, Tq, Tk), no gradient. Returns (B, H, Tq, D) as a
/// view of a (B, Tq, H, D) buffer, so merging the heads afterwards copies nothing.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    if !supported(q, k, v, mask) {
        candle_core::bail!(
            "fused attention: unsupported inputs {:?} {:?}",
            q.dims(),
            k.dims()
        )
    }
    q.apply_op3(k, v, Attention::new(q, k, v, mask, None)?)?
        .transpose(1, 2)
}

/// [`attention`] on the heads in place: `q` (B, Tq, H*D), `k`, `v` (B, Tk, Hkv*D) with
/// `heads` = (H, Hkv); returns the merged heads (B, Tq, H*D). No head split or merge appears in
/// the gradient graph.
pub fn attention_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: (usize, usize),
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    if !supported_rows(q, k, v, heads, mask) {
        candle_core::bail!(
            "fused attention: unsupported inputs {:?} {:?}",
            q.dims(),
            k.dims()
        )
    }
    q.apply_op3(k, v, Attention::new(q, k, v, mask, Some(heads))?)
}

/// An additive mask broadcast to (B, H, Tq, Tk): one contiguous row of Tk values per
/// (batch, head, query), shared where the mask has a dimension of 1.
struct MaskRows {
    data: Vec<f32>,
    /// Element strides of the batch, head and query dimensions (0 where broadcast).
    strides: [usize; 3],
}

impl MaskRows {
    fn new(m: &Tensor, (b, h, tq, tk): (usize, usize, usize, usize)) -> Result<Self> {
        let dims = m.dims();
        if dims.len() > 4 {
            candle_core::bail!("attention mask {dims:?} has more than 4 dimensions")
        }
        let mut full = [1usize; 4];
        full[4 - dims.len()..].copy_from_slice(dims);
        let want = [b, h, tq, tk];
        if full[3] != tk || (0..3).any(|i| full[i] != 1 && full[i] != want[i]) {
            candle_core::bail!("attention mask {dims:?} does not broadcast to {want:?}")
        }
        let data: Vec<f32> = m.flatten_all()?.to_vec1()?;
        let (s2, s1) = (tk, tk * full[2]);
        let s0 = s1 * full[1];
        let st = |i: usize, s: usize| if full[i] == 1 { 0 } else { s };
        Ok(Self {
            data,
            strides: [st(0, s0), st(1, s1), st(2, s2)],
        })
    }

    fn row(&self, b: usize, h: usize, i: usize, tk: usize) -> &[f32] {
        let [s0, s1, s2] = self.strides;
        let at = b * s0 + h * s1 + i * s2;
        &self.data[at..at + tk]
    }
}

/// A (B, H, T, D) tensor in CPU memory with its strides: each (batch, head) is a (T, D) matrix.
pub(crate) struct Heads<'a> {
    data: &'a [f32],
    dims: [usize; 4],
    strides: [usize; 4],
}

impl<'a> Heads<'a> {
    /// A 4-D layout, or a 3-D (B, T, H*D) one split into `heads`.
    pub(crate) fn new(s: &'a CpuStorage, l: &Layout, heads: Option<usize>) -> Result<Self> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("fused attention: only f32 is supported")
        };
        let (d, st) = (l.dims(), l.stride());
        let (dims, strides) = match heads {
            None => ([d[0], d[1], d[2], d[3]], [st[0], st[1], st[2], st[3]]),
            Some(h) => {
                let hd = d[2] / h;
                ([d[0], h, d[1], hd], [st[0], hd * st[2], st[1], st[2]])
            }
        };
        Ok(Self {
            data: &v[l.start_offset()..],
            dims,
            strides,
        })
    }

    fn mat(&self, b: usize, h: usize) -> Result<Mat<'a>> {
        let at = b * self.strides[0] + h * self.strides[1];
        if at > self.data.len() {
            candle_core::bail!("fused attention: layout runs past its storage")
        }
        Mat::from_slice(
            &self.data[at..],
            (self.dims[2], self.dims[3]),
            (self.strides[2], self.strides[3]),
        )
    }
}

pub(crate) struct Attention {
    scale: f32,
    /// (H, Hkv) when the inputs are (B, T, H*D) rows rather than 4-D heads.
    heads: Option<(usize, usize)>,
    /// Query heads per key/value head.
    rep: usize,
    mask: Option<Arc<MaskRows>>,
    /// Which of q, k, v need a gradient.
    need: [bool; 3],
    /// The softmax kernel's instruction set.
    simd: Simd,
}

impl Attention {
    pub(crate) fn new(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        heads: Option<(usize, usize)>,
    ) -> Result<Self> {
        let dims = |t: &Tensor, h: Option<usize>| {
            head_dims(t, h)
                .ok_or_else(|| candle_core::Error::Msg("fused attention: bad shape".into()))
        };
        let [b, h, tq, d] = dims(q, heads.map(|h| h.0))?;
        let [_, hk, tk, _] = dims(k, heads.map(|h| h.1))?;
        let mask = match mask {
            Some(m) => Some(Arc::new(MaskRows::new(m, (b, h, tq, tk))?)),
            None => None,
        };
        Ok(Self {
            scale: 1.0 / (d as f32).sqrt(),
            heads,
            rep: h / hk,
            mask,
            need: [q.track_op(), k.track_op(), v.track_op()],
            simd: Simd::detect(),
        })
    }

    /// The probabilities of batch row `b`, query head `h` into `p` (Tq, Tk).
    fn probs(&self, p: &mut [f32], q: &Heads, k: &Heads, b: usize, h: usize) -> Result<()> {
        let tk = k.dims[2];
        product_to(
            p,
            tk,
            q.mat(b, h)?,
            k.mat(b, h / self.rep)?.t(),
            self.scale,
            false,
        )?;
        if let Some(m) = &self.mask {
            for (i, row) in p.chunks_mut(tk).enumerate() {
                row.iter_mut()
                    .zip(m.row(b, h, i, tk))
                    .for_each(|(s, m)| *s += m);
            }
        }
        softmax_rows(p, tk, self.simd);
        Ok(())
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "tuna-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (hq, hk) = (self.heads.map(|h| h.0), self.heads.map(|h| h.1));
        let (q, k, v) = (
            Heads::new(s1, l1, hq)?,
            Heads::new(s2, l2, hk)?,
            Heads::new(s3, l3, hk)?,
        );
        self.forward_heads(&q, &k, &v)
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (hq, hkv) = (self.heads.map(|h| h.0), self.heads.map(|h| h.1));
        let [b, h, tq, d] = dims_of(q, hq)?;
        let [_, hk, tk, _] = dims_of(k, hkv)?;
        let mut dq = vec![0f32; b * tq * h * d];
        let mut dk = vec![0f32; b * tk * hk * d];
        let mut dv = vec![0f32; b * tk * hk * d];
        self.with_heads([q, k, v], (hq, hkv), res, grad, |heads| {
            dq.par_chunks_mut((tq * h * d).max(1))
                .zip(dk.par_chunks_mut((tk * hk * d).max(1)))
                .zip(dv.par_chunks_mut((tk * hk * d).max(1)))
                .enumerate()
                .try_for_each(|(bi, ((dq, dk), dv))| {
                    let rows = GradRows::Split { dq, dk, dv, h, hk };
                    self.backward_row(rows, heads, bi)
                })
        })?;
        let dev = q.device();
        let rows = self.heads.is_some();
        // Gradients in (B, T, heads, D) order: the rows themselves, or seen as 4-D heads.
        let wrap =
            |need: bool, g: Vec<f32>, (b, t, n, d): (usize, usize, usize, usize)| -> Result<_> {
                if !need {
                    return Ok(None);
                }
                let g = Tensor::from_vec(g, (b, t, n * d), dev)?;
                Ok(Some(if rows {
                    g
                } else {
                    g.reshape((b, t, n, d))?.transpose(1, 2)?
                }))
            };
        Ok((
            wrap(self.need[0], dq, (b, tq, h, d))?,
            wrap(self.need[1], dk, (b, tk, hk, d))?,
            wrap(self.need[2], dv, (b, tk, hk, d))?,
        ))
    }
}

/// The (B, H, T, D) dimensions of `t`, or an error.
pub(crate) fn dims_of(t: &Tensor, heads: Option<usize>) -> Result<[usize; 4]> {
    head_dims(t, heads).ok_or_else(|| candle_core::Error::Msg("fused attention: bad shape".into()))
}

impl Attention {
    /// The output (B, Tq, H, D) of the heads `q`, `k`, `v`, one batch row per work item.
    pub(crate) fn forward_heads(
        &self,
        q: &Heads,
        k: &Heads,
        v: &Heads,
    ) -> Result<(CpuStorage, Shape)> {
        let [b, h, tq, d] = q.dims;
        let tk = k.dims[2];
        let mut out = vec![0f32; b * tq * h * d];
        out.par_chunks_mut((tq * h * d).max(1))
            .enumerate()
            .try_for_each(|(bi, ob)| -> Result<()> {
                let mut p = vec![0f32; tq * tk];
                for hi in 0..h {
                    self.probs(&mut p, q, k, bi, hi)?;
                    let pm = Mat::from_slice(&p, (tq, tk), (tk, 1))?;
                    let vm = v.mat(bi, hi / self.rep)?;
                    product_to(&mut ob[hi * d..], h * d, pm, vm, 1.0, false)?;
                }
                Ok(())
            })?;
        let shape = match self.heads {
            Some(_) => Shape::from((b, tq, h * d)),
            None => Shape::from((b, tq, h, d)),
        };
        Ok((CpuStorage::F32(out), shape))
    }

    /// Calls `f` with the heads of `q`, `k`, `v` (views with `heads` = (H, Hkv) when rows),
    /// the output `res` and its gradient `grad` (both (B, Tq, H, D) in memory).
    pub(crate) fn with_heads<R>(
        &self,
        [q, k, v]: [&Tensor; 3],
        (hq, hkv): (Option<usize>, Option<usize>),
        res: &Tensor,
        grad: &Tensor,
        f: impl FnOnce([&Heads; 5]) -> Result<R>,
    ) -> Result<R> {
        let grad = grad.contiguous()?;
        let [b, h, tq, d] = dims_of(q, hq)?;
        let parts = [
            cpu_parts(q, OP)?,
            cpu_parts(k, OP)?,
            cpu_parts(v, OP)?,
            cpu_parts(res, OP)?,
            cpu_parts(&grad, OP)?,
        ];
        let [qh, kh, vh] = [(0, hq), (1, hkv), (2, hkv)]
            .map(|(i, n)| Heads::new(cpu(&parts[i].0), &parts[i].1, n));
        let (qh, kh, vh) = (qh?, kh?, vh?);
        // The output and its gradient, (B, Tq, H, D) contiguous, seen as (B, H, Tq, D) heads.
        let merged = |i: usize| -> Result<Heads> {
            let CpuStorage::F32(x) = cpu(&parts[i].0) else {
                candle_core::bail!("fused attention: only f32 is supported")
            };
            let start = parts[i].1.start_offset();
            Ok(Heads {
                data: &x[start..start + b * tq * h * d],
                dims: [b, h, tq, d],
                strides: [tq * h * d, d, h * d, 1],
            })
        };
        let (oh, gh) = (merged(3)?, merged(4)?);
        f([&qh, &kh, &vh, &oh, &gh])
    }
}

/// Where one batch row's gradients go: three buffers, dq (Tq, H, D) and dk, dv (Tk, Hkv, D),
/// or one packed (T, H + 2 Hkv, D) buffer holding q's, k's and v's columns side by side.
pub(crate) enum GradRows<'a> {
    Split {
        dq: &'a mut [f32],
        dk: &'a mut [f32],
        dv: &'a mut [f32],
        h: usize,
        hk: usize,
    },
    Packed {
        buf: &'a mut [f32],
        h: usize,
        hk: usize,
    },
}

impl GradRows<'_> {
    /// Query heads.
    fn heads(&self) -> usize {
        match self {
            GradRows::Split { h, .. } | GradRows::Packed { h, .. } => *h,
        }
    }

    /// The gradient of head `head` of q (0), k (1) or v (2), from its first element, with the
    /// row stride.
    fn slot(&mut self, which: usize, head: usize, d: usize) -> (&mut [f32], usize) {
        match self {
            GradRows::Split { dq, dk, dv, h, hk } => match which {
                0 => (&mut dq[head * d..], *h * d),
                1 => (&mut dk[head * d..], *hk * d),
                _ => (&mut dv[head * d..], *hk * d),
            },
            GradRows::Packed { buf, h, hk } => {
                let col = [0, *h, *h + *hk][which.min(2)] + head;
                (&mut buf[col * d..], (*h + 2 * *hk) * d)
            }
        }
    }
}

impl Attention {
    /// The gradients of batch row `b`: per head, with P the probabilities, dO the output's
    /// gradient and O the output, dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO O)) / sqrt(D),
    /// dQ = dS K, dK += dS^T Q.
    pub(crate) fn backward_row(
        &self,
        mut g: GradRows,
        [q, k, v, o, go]: [&Heads; 5],
        b: usize,
    ) -> Result<()> {
        let [_, _, tq, d] = q.dims;
        let tk = k.dims[2];
        let (mut p, mut ds) = (vec![0f32; tq * tk], vec![0f32; tq * tk]);
        let mut delta = vec![0f32; tq];
        for hi in 0..g.heads() {
            let (kv, first) = (hi / self.rep, hi % self.rep == 0);
            self.probs(&mut p, q, k, b, hi)?;
            let (gm, om) = (go.mat(b, hi)?, o.mat(b, hi)?);
            for (i, dl) in delta.iter_mut().enumerate() {
                *dl = (0..d).map(|j| gm.at(i, j) * om.at(i, j)).sum();
            }
            let pm = Mat::from_slice(&p, (tq, tk), (tk, 1))?;
            if self.need[2] {
                let (dst, ld) = g.slot(2, kv, d);
                product_to(dst, ld, pm.t(), gm, 1.0, !first)?;
            }
            product_to(&mut ds, tk, gm, v.mat(b, kv)?.t(), 1.0, false)?;
            for ((dsr, pr), dl) in ds.chunks_mut(tk).zip(p.chunks(tk)).zip(&delta) {
                for (s, &pv) in dsr.iter_mut().zip(pr) {
                    *s = pv * (*s - dl) * self.scale;
                }
            }
            let dsm = Mat::from_slice(&ds, (tq, tk), (tk, 1))?;
            if self.need[0] {
                let (dst, ld) = g.slot(0, hi, d);
                product_to(dst, ld, dsm, k.mat(b, kv)?, 1.0, false)?;
            }
            if self.need[1] {
                let (dst, ld) = g.slot(1, kv, d);
                product_to(dst, ld, dsm.t(), q.mat(b, hi)?, 1.0, !first)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// The composition of tensor ops the fused op replaces.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let rep = q.dim(1)? / k.dim(1)?;
        let k = crate::attention::repeat_kv(k, rep)?.contiguous()?;
        let v = crate::attention::repeat_kv(v, rep)?.contiguous()?;
        let s = (q.contiguous()?.matmul(&k.t()?)? / (q.dim(3)? as f64).sqrt())?;
        let s = match mask {
            Some(m) => s.broadcast_add(m)?,
            None => s,
        };
        let max = s.max_keepdim(D::Minus1)?.detach();
        let e = s.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?.matmul(&v)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar()
    }

    /// Output and all three gradients against the composition: grouped heads (4 query heads on
    /// 2 key/value heads), more keys than queries (a prefix), a padding and causal mask, and
    /// query heads that are a strided view of a (B, T, H, D) tensor.
    #[test]
    fn output_and_gradients_match_the_composition() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, hk, tq, tk, d) = (2, 4, 2, 3, 5, 4);
        let q = Var::from_tensor(&Tensor::randn(0f32, 1., (b, tq, h, d), &dev)?)?;
        let k = Var::from_tensor(&Tensor::randn(0f32, 1., (b, hk, tk, d), &dev)?)?;
        let v = Var::from_tensor(&Tensor::randn(0f32, 1., (b, hk, tk, d), &dev)?)?;
        let keys = Tensor::new(&[[1u32, 1, 1, 1, 0], [1, 1, 1, 1, 1]], &dev)?;
        let mask = crate::mask::causal_mask(tq, tk - tq, Some(&keys), &dev)?;
        let w = Tensor::randn(0f32, 1., (b, h, tq, d), &dev)?;
        let qv = q.as_tensor().transpose(1, 2)?; // (B, H, Tq, D), strided
        for m in [None, Some(&mask)] {
            let fused = attention(&qv, &k, &v, m)?;
            let plain = composed(&qv, &k, &v, m)?;
            assert!(max_diff(&fused, &plain)? < 1e-5);
            let gf = (&fused * &w)?.sum_all()?.backward()?;
            let gp = (&plain * &w)?.sum_all()?.backward()?;
            for var in [&q, &k, &v] {
                let (a, c) = (gf.get(var).unwrap(), gp.get(var).unwrap());
                let diff = max_diff(a, c)?;
                assert!(diff < 1e-5, "gradient differs by {diff}");
                assert!(a.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
            }
        }
        Ok(())
    }

    /// Rows mode: q, k and v are column slices of one (B, T, 3*H*D) tensor (as a fused q/k/v
    /// product gives them); the output and gradient match the split-heads composition.
    #[test]
    fn rows_of_a_fused_product_match_the_composition() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, t, d) = (2, 3, 4, 2);
        let qkv = Var::from_tensor(&Tensor::randn(0f32, 1., (b, t, 3 * h * d), &dev)?)?;
        let part = |i: usize| qkv.as_tensor().narrow(2, i * h * d, h * d);
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let keys = Tensor::new(&[[1u32, 1, 1, 0], [1, 1, 1, 1]], &dev)?;
        let mask = crate::mask::padding_mask(&keys)?;
        let fused = attention_rows(&q, &k, &v, (h, h), Some(&mask))?;
        let split = |x: &Tensor| crate::attention::split_heads(&x.contiguous()?, h);
        let plain = composed(&split(&q)?, &split(&k)?, &split(&v)?, Some(&mask))?;
        let plain = crate::attention::merge_heads(&plain)?;
        assert!(max_diff(&fused, &plain)? < 1e-5);
        let w = Tensor::randn(0f32, 1., (b, t, h * d), &dev)?;
        let gf = (&fused * &w)?.sum_all()?.backward()?;
        let gp = (&plain * &w)?.sum_all()?.backward()?;
        let diff = max_diff(gf.get(&qkv).unwrap(), gp.get(&qkv).unwrap())?;
        assert!(diff < 1e-5, "gradient differs by {diff}");
        Ok(())
    }

    #[test]
    fn a_mask_that_does_not_broadcast_is_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::zeros((1, 2, 3, 4), candle_core::DType::F32, &dev)?;
        let bad = Tensor::zeros((1, 1, 2, 3), candle_core::DType::F32, &dev)?;
        assert!(attention(&q, &q, &q, Some(&bad)).is_err());
        Ok(())
    }
}
