//! One frozen product shared by rows that different methods adapt: the delta of a decoding batch
//! whose rows belong to different adapters of one base model (`tuna serve`). The rows come in
//! runs of consecutive rows, each run with its own delta or none; the frozen product runs once
//! over every row, and each run's rows get what its delta makes of them alone (products are row
//! by row, so a row's output is the one it has in a batch of its adapter only).

use crate::delta::WeightDelta;
use crate::visit::Visitor;
use crate::weight::Weight;
use candle_core::{Result, Tensor};

/// A run of rows: its first row, its length, and the index of its delta (none: passed
/// through).
type Span = (usize, usize, Option<usize>);

/// Runs of rows, each adapted by one of a few deltas (or passed through).
#[derive(Debug, Clone)]
pub struct RoutedDelta {
    /// (rows, index into `deltas`) in row order.
    runs: Vec<(usize, Option<usize>)>,
    deltas: Vec<Box<dyn WeightDelta>>,
}

impl RoutedDelta {
    /// The delta of rows in `runs`: `(n, Some(i))` for the next `n` rows adapted by
    /// `deltas[i]`, `(n, None)` for `n` rows passed through. Runs of one delta need not be
    /// consecutive: its rows are gathered and adapted together.
    pub fn new(runs: Vec<(usize, Option<usize>)>, deltas: Vec<Box<dyn WeightDelta>>) -> Self {
        Self { runs, deltas }
    }

    /// Each run as (first row, rows, delta), checked against the `n` rows of an input.
    fn spans(&self, n: usize) -> Result<Vec<Span>> {
        let mut start = 0;
        let mut spans = Vec::with_capacity(self.runs.len());
        for &(len, d) in &self.runs {
            if d.is_some_and(|d| d >= self.deltas.len()) {
                candle_core::bail!("routed delta: run of delta {d:?} of {}", self.deltas.len())
            }
            spans.push((start, len, d));
            start += len;
        }
        if start != n {
            candle_core::bail!("routed delta over {start} rows applied to {n} rows")
        }
        Ok(spans)
    }

    /// The rows of each delta, in row order.
    fn rows_of(&self, spans: &[Span]) -> Vec<Vec<u32>> {
        let mut rows = vec![Vec::new(); self.deltas.len()];
        for &(start, len, d) in spans {
            if let Some(d) = d {
                rows[d].extend(start as u32..(start + len) as u32);
            }
        }
        rows
    }
}

impl WeightDelta for RoutedDelta {
    fn input(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let mut changed = false;
        let mut parts = Vec::with_capacity(self.runs.len());
        for (start, len, d) in self.spans(x.dim(0)?)? {
            let rows = x.narrow(0, start, len)?;
            match d
                .map(|d| self.deltas[d].input(&rows))
                .transpose()?
                .flatten()
            {
                Some(t) => {
                    changed = true;
                    parts.push(t)
                }
                None => parts.push(rows),
            }
        }
        match changed {
            true => Ok(Some(Tensor::cat(&parts, 0)?)),
            false => Ok(None),
        }
    }

    /// Each delta's rows gathered and adapted in one call (a decoding batch's rows come in
    /// arrival order, each adapter's scattered among the others'), then every row put back
    /// in its place.
    fn output(
        &self,
        x: &Tensor,
        base: Tensor,
        weight: &Weight,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let n = x.dim(0)?;
        let spans = self.spans(n)?;
        if spans.iter().all(|(_, _, d)| d.is_none()) {
            return Ok(base);
        }
        let rows = self.rows_of(&spans);
        let mut parts = vec![base.clone()];
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut next = n as u32;
        for (d, r) in rows.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            if r.len() == n {
                return self.deltas[d].output(x, base, weight, bias);
            }
            let at = Tensor::from_slice(r, r.len(), x.device())?;
            let (xs, bs) = (x.index_select(&at, 0)?, base.index_select(&at, 0)?);
            parts.push(self.deltas[d].output(&xs, bs, weight, bias)?);
            for &row in r {
                order[row as usize] = next;
                next += 1;
            }
        }
        let order = Tensor::from_vec(order, n, x.device())?;
        Tensor::cat(&parts, 0)?.index_select(&order, 0)
    }

    /// Routing is set up for one forward pass and holds no tensors of its own to save.
    fn visit(&mut self, _module: &str, _f: &mut Visitor) -> Result<()> {
        Ok(())
    }

    fn merge(&self, _weight: &Tensor, _bias: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        candle_core::bail!("rows adapted by different methods have no one merged weight")
    }

    fn clone_box(&self) -> Box<dyn WeightDelta> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::Linear;
    use candle_core::{Device, Module};

    /// Adds `x M` to the output (M: (in, out)), and optionally scales the input first.
    #[derive(Debug, Clone)]
    struct Shift {
        m: Tensor,
        scale_input: Option<f64>,
    }

    impl WeightDelta for Shift {
        fn input(&self, x: &Tensor) -> Result<Option<Tensor>> {
            self.scale_input.map(|s| x.affine(s, 0.0)).transpose()
        }
        fn output(
            &self,
            x: &Tensor,
            base: Tensor,
            _: &Weight,
            _: Option<&Tensor>,
        ) -> Result<Tensor> {
            base + x.matmul(&self.m)?
        }
        fn visit(&mut self, _: &str, _: &mut Visitor) -> Result<()> {
            Ok(())
        }
        fn merge(&self, _: &Tensor, _: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
            candle_core::bail!("not needed")
        }
        fn clone_box(&self) -> Box<dyn WeightDelta> {
            Box::new(self.clone())
        }
    }

    fn layer(w: &Tensor, b: &Tensor, d: Option<Box<dyn WeightDelta>>) -> Linear {
        let mut l = Linear::new(w.clone(), Some(b.clone()));
        l.delta = d;
        l
    }

    /// Rows in runs of a base run, two deltas (one changing the input, one in two runs) and
    /// the base again give, row for row, what each run's own layer gives them (to rounding:
    /// the dense product may block a different number of rows differently).
    #[test]
    fn each_run_of_rows_gets_its_own_delta() -> Result<()> {
        let dev = Device::Cpu;
        let (i, o) = (6, 5);
        let w = Tensor::randn(0f32, 1.0, (o, i), &dev)?;
        let b = Tensor::randn(0f32, 1.0, o, &dev)?;
        let x = Tensor::randn(0f32, 1.0, (7, i), &dev)?;
        let a: Box<dyn WeightDelta> = Box::new(Shift {
            m: Tensor::randn(0f32, 1.0, (i, o), &dev)?,
            scale_input: None,
        });
        let c: Box<dyn WeightDelta> = Box::new(Shift {
            m: Tensor::randn(0f32, 1.0, (i, o), &dev)?,
            scale_input: Some(0.5),
        });
        let deltas = vec![a, c];
        let runs = [
            (2, None),
            (1, Some(0)),
            (2, Some(1)),
            (1, None),
            (1, Some(0)),
        ];
        let routed = RoutedDelta::new(runs.to_vec(), deltas.clone());
        let got = layer(&w, &b, Some(Box::new(routed))).forward(&x)?;
        let mut start = 0;
        for (n, d) in runs {
            let rows = x.narrow(0, start, n)?;
            let want = layer(&w, &b, d.map(|d| deltas[d].clone())).forward(&rows)?;
            let diff = (got.narrow(0, start, n)? - want)?.abs()?.max_all()?;
            let diff = diff.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "rows {start}..{}: {diff}", start + n);
            start += n;
        }
        let short = RoutedDelta::new(vec![(3, None)], vec![]);
        assert!(layer(&w, &b, Some(Box::new(short))).forward(&x).is_err());
        let unknown = RoutedDelta::new(vec![(7, Some(1))], deltas[..1].to_vec());
        assert!(layer(&w, &b, Some(Box::new(unknown))).forward(&x).is_err());
        let all = RoutedDelta::new(vec![(3, Some(1)), (4, Some(1))], deltas.clone());
        let got = layer(&w, &b, Some(Box::new(all))).forward(&x)?;
        let want = layer(&w, &b, Some(deltas[1].clone())).forward(&x)?;
        assert_eq!(
            got.to_vec2::<f32>()?,
            want.to_vec2::<f32>()?,
            "one delta for every row"
        );
        Ok(())
    }
}
