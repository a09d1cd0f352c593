//! Key/value cache for incremental decoding: each layer's keys and values of the positions seen
//! so far, so a new token attends to them without recomputing them.

use candle_core::{Result, Tensor};

/// Per layer, the cached keys and values (B, kv heads, T, head dim).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> Result<usize> {
        match self.layers.first() {
            Some(Some((k, _))) => k.dim(2),
            _ => Ok(0),
        }
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len().map(|n| n == 0).unwrap_or(true)
    }

    /// Appends the new `k`, `v` of layer `i` and returns everything cached for it, new
    /// positions last.
    pub fn append(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if i >= self.layers.len() {
            candle_core::bail!("kv cache has {} layers, got layer {i}", self.layers.len());
        }
        let (k, v) = match &self.layers[i] {
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
            None => (k.clone(), v.clone()),
        };
        self.layers[i] = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// Forgets every position from `len` on (a conversation that changed after them).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            let keep = len.min(k.dim(2)?);
            *k = k.narrow(2, 0, keep)?;
            *v = v.narrow(2, 0, keep)?;
        }
        Ok(())
    }

    /// Keeps only the rows `rows` of the batch (finished sequences leave a batched decode).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn appends_along_positions() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = KvCache::new(2);
        assert_eq!(c.len()?, 0);
        let a = Tensor::zeros((1, 1, 3, 4), DType::F32, &dev)?;
        let b = Tensor::ones((1, 1, 1, 4), DType::F32, &dev)?;
        c.append(0, &a, &a)?;
        c.append(1, &a, &a)?;
        let (k, _) = c.append(0, &b, &b)?;
        assert_eq!(k.dims(), &[1, 1, 4, 4]);
        assert_eq!(k.narrow(2, 3, 1)?.sum_all()?.to_scalar::<f32>()?, 4.0);
        assert_eq!(c.len()?, 4);
        assert!(c.append(2, &b, &b).is_err());
        c.truncate(3)?;
        assert_eq!(c.len()?, 3);
        let (k, _) = c.append(1, &b, &b)?;
        assert_eq!(k.narrow(2, 0, 3)?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }
}
