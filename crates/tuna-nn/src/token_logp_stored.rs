//! [`crate::token_logp`] for an output layer kept in its stored type ([`QuantMatrix`]): the
//! same log-probabilities of given next tokens, formed a chunk of rows at a time so that the
//! (tokens x vocabulary) logits are never whole in memory, with each chunk's logits and its
//! `(e_t - p) W` from the quantised products. The weight is frozen (it is not a tensor), so
//! only the hidden states get a gradient, and no f32 copy of the weight is made.

use crate::gelu::contiguous_f32;
use crate::quant::QuantMatrix;
use crate::token_logp::{chunk_rows, minus_onehot, reduce_rows};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

const NAME: &str = "tuna-token-logp-stored";

/// True when [`token_logprobs`] can run: CPU f32 `hidden` (N, H) with H the weight's columns.
pub fn supported(hidden: &Tensor, weight: &QuantMatrix) -> bool {
    let cpu_f32 = hidden.device().is_cpu() && hidden.dtype() == candle_core::DType::F32;
    match hidden.dims() {
        &[_, h] => cpu_f32 && h == weight.col_count() && weight.row_count() > 0,
        _ => false,
    }
}

/// `log softmax(hidden W^T)[i, targets[i]]` (N,) for `hidden` (N, H) and a stored `weight`
/// (V, H), differentiable in `hidden`; with `entropy`, also each row's entropy (N,), without a
/// gradient.
pub fn token_logprobs(
    hidden: &Tensor,
    weight: &Arc<QuantMatrix>,
    targets: &[u32],
    entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    if !supported(hidden, weight) {
        candle_core::bail!(
            "token log-probabilities: unsupported inputs {:?} for a stored ({}, {}) weight",
            hidden.dims(),
            weight.row_count(),
            weight.col_count()
        )
    }
    let (n, v) = (hidden.dims2()?.0, weight.row_count());
    if targets.len() != n || targets.iter().any(|&t| t as usize >= v) {
        candle_core::bail!("token log-probabilities: {n} rows need {n} targets below {v}")
    }
    let op = StoredTokenLogp {
        weight: weight.clone(),
        targets: targets.to_vec(),
        entropy,
        keep: hidden.track_op(),
        unit_grad: Mutex::new(Vec::new()),
    };
    let out = hidden.contiguous()?.apply_op1(op)?;
    let logp = out.narrow(1, 0, 1)?.squeeze(1)?;
    let ent = match entropy {
        true => Some(out.narrow(1, 1, 1)?.squeeze(1)?.detach()),
        false => None,
    };
    Ok((logp, ent))
}

struct StoredTokenLogp {
    weight: Arc<QuantMatrix>,
    targets: Vec<u32>,
    entropy: bool,
    /// Whether the hidden states need a gradient.
    keep: bool,
    /// `(e_t - p) W` per row (N, H), kept by the forward when the hidden states need a gradient.
    unit_grad: Mutex<Vec<f32>>,
}

impl CustomOp1 for StoredTokenLogp {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The chunks run one after another, each product on all the threads (the products split
    /// their work themselves); each row's reduction is a task of its own.
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, NAME)?;
        let (n, hs) = l.shape().dims2()?;
        let v = self.weight.row_count();
        let chunk = chunk_rows(n, v, 1);
        let mut out = vec![0f32; n * 2];
        let mut unit = vec![0f32; if self.keep { n * hs } else { 0 }];
        for at in (0..n).step_by(chunk.max(1)) {
            let rows = chunk.min(n - at);
            let mut z = self.weight.matmul_t(&x[at * hs..(at + rows) * hs], rows)?;
            let t = &self.targets[at..at + rows];
            let pairs: Vec<(f32, f32)> = z
                .par_chunks_mut(v)
                .zip(t.par_iter())
                .map(|(row, &ti)| reduce_rows(row, v, &[ti], self.entropy)[0])
                .collect();
            for (o, (lp, ent)) in out[at * 2..(at + rows) * 2].chunks_mut(2).zip(pairs) {
                o[0] = lp;
                o[1] = ent;
            }
            if self.keep {
                minus_onehot(&mut z, v, t);
                let u = self.weight.matmul(&z, rows)?;
                unit[at * hs..(at + rows) * hs].copy_from_slice(&u);
            }
        }
        *self.unit_grad.lock().expect("token log-prob state") = unit;
        Ok((CpuStorage::F32(out), Shape::from((n, 2))))
    }

    fn bwd(&self, hidden: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !self.keep {
            return Ok(None);
        }
        // Only the log-probability column carries a gradient (the entropy is detached).
        let g: Vec<f32> = grad.narrow(1, 0, 1)?.flatten_all()?.to_vec1()?;
        let (n, hs) = hidden.dims2()?;
        let unit = self.unit_grad.lock().expect("token log-prob state");
        if unit.len() != n * hs {
            candle_core::bail!("token log-probabilities: backward without its forward")
        }
        let mut dh = unit.clone();
        dh.par_chunks_mut(hs.max(1))
            .zip(&g)
            .for_each(|(row, &gi)| row.iter_mut().for_each(|x| *x *= gi));
        Ok(Some(Tensor::from_vec(dh, (n, hs), &Device::Cpu)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::relative;
    use candle_core::quantized::GgmlDType;
    use candle_core::Var;

    /// Values, entropies and the hidden states' gradient equal the chunked f32 op's on the
    /// decoded weight (itself checked against the composed ops) to 1e-4 relative, over more
    /// rows than one chunk holds; the weight gets no gradient.
    #[test]
    fn values_and_gradients_match_the_decoded_weight() -> Result<()> {
        let dev = Device::Cpu;
        let (n, hs, v) = (301, 64, 40);
        let wf = (Tensor::randn(0f32, 1., (v, hs), &dev)? * 0.2)?;
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
            let q = Arc::new(QuantMatrix::quantize(&wf, dtype)?);
            let decoded = q.dequantize()?;
            let h = Var::from_tensor(&Tensor::randn(0f32, 1., (n, hs), &dev)?)?;
            let t: Vec<u32> = (0..n as u32).map(|i| (i * 7) % v as u32).collect();
            let weights = Tensor::randn(0f32, 1., n, &dev)?;
            let (lp, ent) = token_logprobs(h.as_tensor(), &q, &t, true)?;
            let (lp_ref, ent_ref) =
                crate::token_logp::token_logprobs(h.as_tensor(), &decoded, &t, true)?;
            assert!(
                relative(&lp, &lp_ref)? < 1e-4,
                "{dtype:?} log-probabilities"
            );
            assert!(
                relative(&ent.unwrap(), &ent_ref.unwrap())? < 1e-4,
                "{dtype:?}"
            );
            let g = (lp * &weights)?.sum_all()?.backward()?;
            let g_ref = (lp_ref * &weights)?.sum_all()?.backward()?;
            let (a, b) = (
                g.get(h.as_tensor()).unwrap(),
                g_ref.get(h.as_tensor()).unwrap(),
            );
            assert!(relative(a, b)? < 1e-4, "{dtype:?} gradient");
        }
        Ok(())
    }

    #[test]
    fn bad_targets_and_shapes_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let wf = Tensor::randn(0f32, 1., (5, 32), &dev)?;
        let q = Arc::new(QuantMatrix::quantize(&wf, GgmlDType::Q8_0)?);
        let h = Tensor::randn(0f32, 1., (3, 32), &dev)?;
        let err = token_logprobs(&h, &q, &[0, 5, 2], false).unwrap_err();
        assert!(err.to_string().contains("targets below 5"), "{err}");
        assert!(token_logprobs(&h, &q, &[0], false).is_err());
        let wrong = Tensor::randn(0f32, 1., (3, 31), &dev)?;
        assert!(token_logprobs(&wrong, &q, &[0, 1, 2], false).is_err());
        Ok(())
    }
}
