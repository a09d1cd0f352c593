//! Attention for decoding-sized queries (a few query rows per key/value head), computed on
//! the cache's rows directly: each score is one dot product of a query row with a key row,
//! each output row a sum of value rows weighted by the probabilities. Through candle's
//! products a decoding step made two small `gemm` calls per batch row, key/value head and
//! layer (1,440 for eight rows of SmolLM2-135M), each costing more in set-up than in
//! arithmetic. The (batch row, key/value head) pairs are split across threads.

use crate::fast_exp::{dispatch, softmax_loop, sum_lanes, Simd, LANES};
use crate::quant::split::for_each_share;
use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// Query rows per key/value head (the group's heads times the new tokens) up to which
/// attention runs here; more (a prefill) go through the products.
pub(crate) const MAX_ROWS: usize = 16;

/// One (batch row, key/value head) pair's inputs.
struct Unit<'a> {
    /// The group's query rows (rep heads x tq tokens), each `d` long, one after another.
    q: &'a [f32],
    /// Key and value rows from the first, `row_stride` apart.
    k: &'a [f32],
    v: &'a [f32],
    row_stride: (usize, usize),
    /// The additive mask's rows for this batch row (tq x tk), if any.
    mask: Option<&'a [f32]>,
    dims: (usize, usize, usize),
    scale: f32,
}

/// `x · y`, in `LANES` lanes summed in halves.
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut l = [0f32; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: f32 = (xc.remainder().iter().zip(yc.remainder()))
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for j in 0..LANES {
            l[j] += a[j] * b[j];
        }
    }
    sum_lanes(l) + tail
}

/// The outputs of one unit into `out` (its query rows' order), `p` a buffer of `tk` scores.
#[inline(always)]
fn unit_body(u: &Unit, out: &mut [f32], p: &mut [f32]) {
    let (tq, tk, d) = u.dims;
    for (row, (qr, o)) in u.q.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let k_rows = u.k.chunks(u.row_stride.0);
        for (s, kr) in p.iter_mut().zip(k_rows) {
            *s = dot(qr, &kr[..d]) * u.scale;
        }
        if let Some(m) = u.mask {
            let i = row % tq;
            p.iter_mut()
                .zip(&m[i * tk..(i + 1) * tk])
                .for_each(|(s, m)| *s += m);
        }
        softmax_loop(p, tk);
        o.fill(0.0);
        for (&w, vr) in p.iter().zip(u.v.chunks(u.row_stride.1)) {
            o.iter_mut().zip(&vr[..d]).for_each(|(o, v)| *o += w * v);
        }
    }
}

/// `unit_body` compiled for the CPU's widest vectors.
fn run_unit(simd: Simd, u: &Unit, out: &mut [f32], p: &mut [f32]) {
    dispatch!(simd, (), |u: &Unit, out: &mut [f32], p: &mut [f32]| {
        unit_body(u, out, p)
    })
}

/// The f32 values of a CPU storage, or `None`.
fn values(s: &Storage) -> Option<&[f32]> {
    match s {
        Storage::Cpu(CpuStorage::F32(v)) => Some(v),
        _ => None,
    }
}

/// Decoding attention: `q` (B, Hkv, rep * Tq, D) contiguous, `k`, `v` (B, Hkv, Tk, D) with
/// contiguous rows, `mask` (1 or B, Tq, Tk) contiguous; the output (B, Hkv * rep, Tq, D).
/// `None` when an input is not f32 on the CPU or there are no keys.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    (rep, tq): (usize, usize),
) -> Result<Option<Tensor>> {
    let (b, hkv, rows, d) = q.dims4()?;
    let tk = k.dim(2)?;
    if tk == 0 {
        return Ok(None);
    }
    let (qs, ql) = q.storage_and_layout();
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Some(qv), Some(kv), Some(vv)) = (values(&qs), values(&ks), values(&vs)) else {
        return Ok(None);
    };
    let mask_guard = mask.map(|m| m.storage_and_layout());
    let mask_vals = match &mask_guard {
        Some((s, l)) => match values(s) {
            Some(v) => Some((&v[l.start_offset()..], l.dims()[0])),
            None => return Ok(None),
        },
        None => None,
    };
    let at =
        |l: &Layout, bi: usize, g: usize| l.start_offset() + bi * l.stride()[0] + g * l.stride()[1];
    let units: Vec<Unit> = (0..b * hkv)
        .map(|i| {
            let (bi, g) = (i / hkv, i % hkv);
            let q0 = ql.start_offset() + i * rows * d;
            Unit {
                q: &qv[q0..q0 + rows * d],
                k: &kv[at(kl, bi, g)..],
                v: &vv[at(vl, bi, g)..],
                row_stride: (kl.stride()[2].max(d), vl.stride()[2].max(d)),
                mask: mask_vals.map(|(m, mb)| {
                    let at = if mb == 1 { 0 } else { bi * tq * tk };
                    &m[at..at + tq * tk]
                }),
                dims: (tq, tk, d),
                scale: 1.0 / (d as f32).sqrt(),
            }
        })
        .collect();
    let mut out = vec![0f32; b * hkv * rows * d];
    let mut work: Vec<(&Unit, &mut [f32])> = units.iter().zip(out.chunks_mut(rows * d)).collect();
    let simd = Simd::detect();
    for_each_share(&mut work, |(u, o)| {
        let mut p = vec![0f32; tk];
        run_unit(simd, u, o, &mut p);
    });
    drop(work);
    Ok(Some(Tensor::from_vec(
        out,
        (b, hkv * rep, tq, d),
        q.device(),
    )?))
}
