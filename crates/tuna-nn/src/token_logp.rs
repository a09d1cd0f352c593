//! Log-probabilities of given next tokens straight from hidden states and the output layer's
//! weight, in chunks of rows: the (tokens x vocabulary) logits are never whole in memory.
//!
//! Composed of tensor ops, scoring N response tokens against a vocabulary of V keeps N x V
//! logits, their log-softmax and, in the backward, as many gradients again (for SmolLM2's 49,152
//! tokens and a batch of 16 answers, gigabytes). Here each chunk of rows forms its logits in a
//! scratch buffer, reduces them to the log-probability of its target (and the entropy), and
//! drops them. The gradient with respect to a row's hidden state is `g (e_t - p) W`, linear in
//! the row's upstream gradient `g`, so when the hidden states need a gradient the forward also
//! keeps `u = (e_t - p) W` (N x H, small) and the backward only scales it. The weight's gradient
//! (full finetuning, a tied embedding) needs `p` again: the backward recomputes each chunk's
//! logits for it. An output layer kept in its stored type has its own op with the same chunks
//! (`token_logp_stored.rs`).

use crate::fast_exp::{exp_shifted, Simd};
use crate::product::{cpu, cpu_parts, product_to, Mat};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// The op's name in errors.
const OP: &str = "token log-probabilities";

/// Scratch for one chunk's logits (per thread): at most 32 MiB, and 16 to 128 rows.
const SCRATCH_BYTES: usize = 32 << 20;

/// Rows whose logits are formed at once, for `n` rows over a vocabulary of `v` on `threads`
/// threads. Each chunk's product reads (and the matrix library packs) the whole output
/// weight, so chunks are as large as the scratch allows, and sized so that every thread gets
/// the same number of them.
pub(crate) fn chunk_rows(n: usize, v: usize, threads: usize) -> usize {
    let most = (SCRATCH_BYTES / (v.max(1) * 4)).clamp(16, 128);
    let threads = threads.max(1);
    let rounds = n.div_ceil(threads).div_ceil(most).max(1);
    n.div_ceil(threads * rounds).max(1)
}

/// True when [`token_logprobs`] can run: CPU f32 `hidden` (N, H) and `weight` (V, H).
pub fn supported(hidden: &Tensor, weight: &Tensor) -> bool {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    match (hidden.dims(), weight.dims()) {
        (&[_, h], &[v, h2]) => cpu_f32(hidden) && cpu_f32(weight) && h == h2 && v > 0,
        _ => false,
    }
}

/// `log softmax(hidden W^T)[i, targets[i]]` (N,) for `hidden` (N, H) and `weight` (V, H),
/// differentiable in both; with `entropy`, also each row's entropy (N,), without a gradient.
pub fn token_logprobs(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &[u32],
    entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    if !supported(hidden, weight) {
        candle_core::bail!(
            "token log-probabilities: unsupported inputs {:?} {:?}",
            hidden.dims(),
            weight.dims()
        )
    }
    let (n, _) = hidden.dims2()?;
    let v = weight.dims2()?.0;
    if targets.len() != n || targets.iter().any(|&t| t as usize >= v) {
        candle_core::bail!("token log-probabilities: {n} rows need {n} targets below {v}")
    }
    let op = TokenLogp {
        targets: targets.to_vec(),
        entropy,
        need: [hidden.track_op(), weight.track_op()],
        unit_grad: Mutex::new(Vec::new()),
    };
    let out = hidden.apply_op2(weight, op)?;
    let logp = out.narrow(1, 0, 1)?.squeeze(1)?;
    let ent = match entropy {
        true => Some(out.narrow(1, 1, 1)?.squeeze(1)?.detach()),
        false => None,
    };
    Ok((logp, ent))
}

struct TokenLogp {
    targets: Vec<u32>,
    entropy: bool,
    /// Which of hidden, weight need a gradient.
    need: [bool; 2],
    /// `(e_t - p) W` per row (N, H), kept by the forward when the hidden states need a gradient.
    unit_grad: Mutex<Vec<f32>>,
}

/// One chunk's logits in `z` (rows x V, row-major), turned in place into the probabilities;
/// returns each row's (log p of its target, entropy).
pub(crate) fn reduce_rows(
    z: &mut [f32],
    v: usize,
    targets: &[u32],
    entropy: bool,
) -> Vec<(f32, f32)> {
    let simd = Simd::detect();
    z.chunks_mut(v)
        .zip(targets)
        .map(|(row, &t)| {
            let target = row[t as usize];
            let (max, sum, weighted) = exp_shifted(row, simd);
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|s| *s *= inv);
            let lse = max + sum.ln();
            let ent = if entropy { lse - weighted * inv } else { 0.0 };
            (target - lse, ent)
        })
        .collect()
}

/// Turns probabilities `p` (rows x V) into `e_t - p`.
pub(crate) fn minus_onehot(p: &mut [f32], v: usize, targets: &[u32]) {
    for (row, &t) in p.chunks_mut(v).zip(targets) {
        row.iter_mut().for_each(|s| *s = -*s);
        row[t as usize] += 1.0;
    }
}

impl CustomOp2 for TokenLogp {
    fn name(&self) -> &'static str {
        "tuna-token-logp"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (h, w) = (
            Mat::new(s1, l1, self.name())?,
            Mat::new(s2, l2, self.name())?,
        );
        let ((n, hs), (v, _)) = (h.dims(), w.dims());
        let keep = self.need[0];
        let chunk = chunk_rows(n, v, rayon::current_num_threads());
        let mut out = vec![0f32; n * 2];
        let mut unit = vec![0f32; if keep { n * hs } else { 0 }];
        let mut units: Vec<&mut [f32]> = match keep {
            true => unit.chunks_mut(chunk * hs).collect(),
            false => (0..n.div_ceil(chunk)).map(|_| Default::default()).collect(),
        };
        out.par_chunks_mut(chunk * 2)
            .zip(units.par_iter_mut())
            .enumerate()
            .try_for_each(|(c, (o, u))| -> Result<()> {
                let rows = o.len() / 2;
                let at = c * chunk;
                let hc = rows_of(s1, l1, at, rows)?;
                let mut z = vec![0f32; rows * v];
                product_to(&mut z, v, hc, w.t(), 1.0, false)?;
                let t = &self.targets[at..at + rows];
                for (pair, (lp, ent)) in
                    o.chunks_mut(2).zip(reduce_rows(&mut z, v, t, self.entropy))
                {
                    pair[0] = lp;
                    pair[1] = ent;
                }
                if keep {
                    minus_onehot(&mut z, v, t);
                    let dz = Mat::from_slice(&z, (rows, v), (v, 1))?;
                    product_to(u, hs, dz, w, 1.0, false)?;
                }
                Ok(())
            })?;
        drop(units);
        *self.unit_grad.lock().expect("token log-prob state") = unit;
        Ok((CpuStorage::F32(out), Shape::from((n, 2))))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Only the log-probability column carries a gradient (the entropy is detached).
        let g: Vec<f32> = grad.narrow(1, 0, 1)?.flatten_all()?.to_vec1()?;
        let (n, hs) = hidden.dims2()?;
        let dh = match self.need[0] {
            true => {
                let unit = self.unit_grad.lock().expect("token log-prob state");
                if unit.len() != n * hs {
                    candle_core::bail!("token log-probabilities: backward without its forward")
                }
                let mut dh = unit.clone();
                dh.par_chunks_mut(hs.max(1))
                    .zip(&g)
                    .for_each(|(row, &gi)| row.iter_mut().for_each(|x| *x *= gi));
                Some(Tensor::from_vec(dh, (n, hs), hidden.device())?)
            }
            false => None,
        };
        let dw = match self.need[1] {
            true => Some(self.weight_grad(hidden, weight, &g)?),
            false => None,
        };
        Ok((dh, dw))
    }
}

impl TokenLogp {
    /// `sum_i g_i (e_t - p_i)^T h_i` (V, H): each thread sums its share of the row chunks into
    /// its own buffer, recomputing their probabilities; the buffers are added at the end.
    fn weight_grad(&self, hidden: &Tensor, weight: &Tensor, g: &[f32]) -> Result<Tensor> {
        let (hid, hl) = cpu_parts(hidden, OP)?;
        let (wt, wl) = cpu_parts(weight, OP)?;
        let w = Mat::new(cpu(&wt), &wl, self.name())?;
        let (v, hs) = w.dims();
        let n = g.len();
        let threads = rayon::current_num_threads();
        let chunk = chunk_rows(n, v, threads);
        let chunks = n.div_ceil(chunk);
        let groups = threads.clamp(1, chunks.max(1));
        let per = chunks.div_ceil(groups);
        let sums = (0..groups)
            .into_par_iter()
            .map(|gi| -> Result<Vec<f32>> {
                let mut acc = vec![0f32; v * hs];
                let mut z = vec![0f32; chunk * v];
                for c in gi * per..((gi + 1) * per).min(chunks) {
                    let (at, rows) = (c * chunk, chunk.min(n - c * chunk));
                    let hc = rows_of(cpu(&hid), &hl, at, rows)?;
                    let z = &mut z[..rows * v];
                    product_to(z, v, hc, w.t(), 1.0, false)?;
                    let t = &self.targets[at..at + rows];
                    reduce_rows(z, v, t, false);
                    minus_onehot(z, v, t);
                    for (row, &gi) in z.chunks_mut(v).zip(&g[at..at + rows]) {
                        row.iter_mut().for_each(|x| *x *= gi);
                    }
                    let dz = Mat::from_slice(z, (rows, v), (v, 1))?;
                    product_to(&mut acc, hs, dz.t(), hc, 1.0, true)?;
                }
                Ok(acc)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut it = sums.into_iter();
        let mut total = it.next().unwrap_or_else(|| vec![0f32; v * hs]);
        for s in it {
            total
                .par_chunks_mut(hs.max(1))
                .zip(s.par_chunks(hs.max(1)))
                .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
        }
        Tensor::from_vec(total, (v, hs), weight.device())
    }
}

/// Rows `at..at + rows` of the 2-D matrix a layout describes.
fn rows_of<'a>(s: &'a CpuStorage, l: &Layout, at: usize, rows: usize) -> Result<Mat<'a>> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("token log-probabilities: only f32 is supported")
    };
    let (_, cols) = l.shape().dims2()?;
    let st = l.stride();
    let start = l.start_offset() + at * st[0];
    Mat::from_slice(&data[start.min(data.len())..], (rows, cols), (st[0], st[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn composed(h: &Tensor, w: &Tensor, t: &[u32]) -> Result<(Tensor, Tensor)> {
        let logits = h.matmul(&w.t()?)?;
        let all = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let idx = Tensor::new(t, h.device())?.unsqueeze(1)?;
        let logp = all.gather(&idx, 1)?.squeeze(1)?;
        let ent = (all.exp()? * &all)?.sum(D::Minus1)?.neg()?;
        Ok((logp, ent))
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    #[test]
    fn values_and_gradients_match_the_composition() -> Result<()> {
        let dev = Device::Cpu;
        // 301 rows: at least three chunks whatever the threads, one of them shorter; the
        // hidden states are a strided view.
        let (n, hs, v) = (301, 8, 29);
        let h = Var::from_tensor(&Tensor::randn(0f32, 1., (hs, n), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1., (v, hs), &dev)?)?;
        let t: Vec<u32> = (0..n as u32).map(|i| (i * 7) % v as u32).collect();
        let weights = Tensor::randn(0f32, 1., n, &dev)?;
        let ht = h.as_tensor().t()?;
        let (lp, ent) = token_logprobs(&ht, w.as_tensor(), &t, true)?;
        let (lp_ref, ent_ref) = composed(&ht, w.as_tensor(), &t)?;
        assert!(max_diff(&lp, &lp_ref)? < 1e-5);
        assert!(max_diff(&ent.unwrap(), &ent_ref)? < 1e-5);
        let g = (lp * &weights)?.sum_all()?.backward()?;
        let g_ref = (lp_ref * &weights)?.sum_all()?.backward()?;
        for x in [h.as_tensor(), w.as_tensor()] {
            let d = max_diff(g.get(x).unwrap(), g_ref.get(x).unwrap())?;
            assert!(d < 1e-5, "gradient differs by {d}");
        }
        Ok(())
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient_and_bad_targets_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let h = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 4), &dev)?)?;
        let w = Tensor::randn(0f32, 1., (5, 4), &dev)?;
        let (lp, _) = token_logprobs(h.as_tensor(), &w, &[0, 4, 2], false)?;
        let g = lp.sum_all()?.backward()?;
        assert!(g.get(&w).is_none());
        assert!(g.get(h.as_tensor()).is_some());
        let err = token_logprobs(h.as_tensor(), &w, &[0, 5, 2], false).unwrap_err();
        assert!(err.to_string().contains("targets below 5"), "{err}");
        assert!(token_logprobs(h.as_tensor(), &w, &[0], false).is_err());
        Ok(())
    }

    #[test]
    fn chunks_are_as_large_as_the_scratch_allows_and_even_over_threads() {
        // SmolLM2's vocabulary: 128 rows of logits fit in the scratch.
        assert_eq!(chunk_rows(384, 49_152, 1), 128);
        // Two threads: four chunks of 96, two each (not three of 128, one thread idle).
        assert_eq!(chunk_rows(384, 49_152, 2), 96);
        assert_eq!(chunk_rows(10, 49_152, 2), 5);
        // A vocabulary too large for 16 rows in the scratch still gets 16.
        assert_eq!(chunk_rows(1000, 1 << 20, 1), 16);
        assert_eq!(chunk_rows(0, 29, 2), 1);
    }
}
