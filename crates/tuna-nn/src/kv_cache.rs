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

    /// Puts `n` zero positions before every cached one (a shorter row made as long as the batch
    /// it joins; the caller masks them out).
    pub fn pad_front(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            for t in [k, v] {
                let (b, h, _, d) = t.dims4()?;
                let zeros = Tensor::zeros((b, h, n, d), t.dtype(), t.device())?;
                *t = Tensor::cat(&[&zeros, &*t], 2)?;
            }
        }
        Ok(())
    }

    /// Forgets the first `n` positions of every row (columns that only padding is left in).
    pub fn drop_front(&mut self, n: usize) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            let keep = k.dim(2)?.saturating_sub(n);
            *k = k.narrow(2, n.min(k.dim(2)?), keep)?;
            *v = v.narrow(2, n.min(v.dim(2)?), keep)?;
        }
        Ok(())
    }

    /// Adds the rows of `other` after this cache's rows (both as long, with as many layers): a
    /// sequence joining a batched decode.
    pub fn cat_rows(&mut self, other: &KvCache) -> Result<()> {
        if other.layers.len() != self.layers.len() {
            candle_core::bail!(
                "kv cache has {} layers, the one joining it {}",
                self.layers.len(),
                other.layers.len()
            );
        }
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            *mine = match (mine.take(), theirs) {
                (Some((k, v)), Some((ok, ov))) => {
                    Some((Tensor::cat(&[&k, ok], 0)?, Tensor::cat(&[&v, ov], 0)?))
                }
                (None, t) => t.clone(),
                (m, None) => m,
            };
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

    #[test]
    fn rows_join_padded_and_leave() -> Result<()> {
        let dev = Device::Cpu;
        let mut a = KvCache::new(1);
        let ones = Tensor::ones((1, 1, 2, 4), DType::F32, &dev)?;
        a.append(0, &ones, &ones)?;
        let mut b = KvCache::new(1);
        let twos = (Tensor::ones((1, 1, 3, 4), DType::F32, &dev)? * 2.0)?;
        b.append(0, &twos, &twos)?;
        a.pad_front(1)?;
        a.cat_rows(&b)?;
        assert_eq!(a.len()?, 3);
        let (k, _) = a.append(
            0,
            &Tensor::zeros((2, 1, 0, 4), DType::F32, &dev)?,
            &Tensor::zeros((2, 1, 0, 4), DType::F32, &dev)?,
        )?;
        assert_eq!(k.dims(), &[2, 1, 3, 4]);
        assert_eq!(k.get(0)?.sum_all()?.to_scalar::<f32>()?, 8.0);
        a.select_rows(&Tensor::new(&[0u32], &dev)?)?;
        a.drop_front(1)?;
        let (k, _) = a.append(
            0,
            &Tensor::zeros((1, 1, 0, 4), DType::F32, &dev)?,
            &Tensor::zeros((1, 1, 0, 4), DType::F32, &dev)?,
        )?;
        assert_eq!(k.dims(), &[1, 1, 2, 4]);
        assert_eq!(k.sum_all()?.to_scalar::<f32>()?, 8.0);
        Ok(())
    }
}
