//! One frozen product shared by rows that different methods adapt: the delta of a decoding batch
//! whose rows belong to different adapters of one base model (`tuna serve`). The rows come in
//! runs of consecutive rows, each run with its own delta or none; the frozen product runs once
//! over every row, and each run's rows get what its delta makes of them alone (products are row
//! by row, so a row's output is the one it has in a batch of its adapter only).

use crate::delta::WeightDelta;
use crate::visit::Visitor;
use crate::weight::Weight;
use candle_core::{Result, Tensor};

/// A run of rows: its first row, its length, and its delta (none: passed through).
type Span<'a> = (usize, usize, Option<&'a dyn WeightDelta>);

/// Runs of rows, each adapted by its own delta (or passed through).
#[derive(Debug, Clone)]
pub struct RoutedDelta {
    /// (rows, delta) in row order.
    runs: Vec<(usize, Option<Box<dyn WeightDelta>>)>,
}

impl RoutedDelta {
    /// The delta of rows in `runs`: `(n, d)` for the next `n` rows, adapted by `d`.
    pub fn new(runs: Vec<(usize, Option<Box<dyn WeightDelta>>)>) -> Self {
        Self { runs }
    }

    /// Each run as (first row, rows, delta), checked against the `n` rows of an input.
    fn spans(&self, n: usize) -> Result<Vec<Span<'_>>> {
        let mut start = 0;
        let spans = self
            .runs
            .iter()
            .map(|(len, d)| {
                let span = (start, *len, d.as_deref());
                start += len;
                span
            })
            .collect();
        if start != n {
            candle_core::bail!("routed delta over {start} rows applied to {n} rows")
        }
        Ok(spans)
    }
}

impl WeightDelta for RoutedDelta {
    fn input(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let mut changed = false;
        let mut parts = Vec::with_capacity(self.runs.len());
        for (start, len, d) in self.spans(x.dim(0)?)? {
            let rows = x.narrow(0, start, len)?;
            match d.map(|d| d.input(&rows)).transpose()?.flatten() {
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

    fn output(
        &self,
        x: &Tensor,
        base: Tensor,
        weight: &Weight,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let spans = self.spans(x.dim(0)?)?;
        if spans.iter().all(|(_, _, d)| d.is_none()) {
            return Ok(base);
        }
        let mut parts = Vec::with_capacity(spans.len());
        for (start, len, d) in spans {
            let rows = base.narrow(0, start, len)?;
            parts.push(match d {
                Some(d) => d.output(&x.narrow(0, start, len)?, rows, weight, bias)?,
                None => rows,
            });
        }
        Tensor::cat(&parts, 0)
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

    /// Rows in runs of a base run, two deltas (one changing the input) and the base again give,
    /// row for row, what each run's own layer gives them (to rounding: the dense product may
    /// block a different number of rows differently).
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
        let runs = [(2, None), (1, Some(a)), (3, Some(c)), (1, None)];
        let routed = RoutedDelta::new(runs.to_vec());
        let got = layer(&w, &b, Some(Box::new(routed))).forward(&x)?;
        let mut start = 0;
        for (n, d) in runs {
            let rows = x.narrow(0, start, n)?;
            let want = layer(&w, &b, d).forward(&rows)?;
            let diff = (got.narrow(0, start, n)? - want)?.abs()?.max_all()?;
            let diff = diff.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "rows {start}..{}: {diff}", start + n);
            start += n;
        }
        let short = RoutedDelta::new(vec![(3, None)]);
        assert!(layer(&w, &b, Some(Box::new(short))).forward(&x).is_err());
        Ok(())
    }
}
