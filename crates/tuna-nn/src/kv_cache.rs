//! Key/value cache for incremental decoding: each layer's keys and values of the positions seen
//! so far, so a new token attends to them without recomputing them.
//!
//! Each layer's keys and values live in buffers with room for more positions than are
//! cached: a new token is written in place and the cached positions are handed out as a view,
//! so a decoding step copies only its own token's keys and values, not the whole cache (the
//! buffers grow by doubling). Rows joining or leaving a batch rebuild the buffers.

use candle_core::{Result, Tensor};

/// Positions a buffer has room for: a multiple of this.
const ROOM: usize = 64;

/// One layer's buffers (B, kv heads, room, head dim) and how many positions they hold.
#[derive(Debug)]
struct Layer {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl Layer {
    /// The cached positions (views of the buffers).
    fn live(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k.narrow(2, 0, self.len)?,
            self.v.narrow(2, 0, self.len)?,
        ))
    }

    /// A layer holding exactly `k` and `v` (copied where they are views).
    fn exact(k: Tensor, v: Tensor) -> Result<Self> {
        let len = k.dim(2)?;
        Ok(Self {
            k: k.contiguous()?,
            v: v.contiguous()?,
            len,
        })
    }

    /// Makes room for `n` more positions, moving the cached ones to larger buffers if needed.
    fn reserve(&mut self, n: usize) -> Result<()> {
        let (room, need) = (self.k.dim(2)?, self.len + n);
        if need <= room {
            return Ok(());
        }
        let room = need.max(2 * room).next_multiple_of(ROOM);
        let (k, v) = self.live()?;
        self.k = with_room(&k, room)?;
        self.v = with_room(&v, room)?;
        Ok(())
    }
}

impl Clone for Layer {
    /// A copy with buffers of its own (appending writes the buffers in place).
    fn clone(&self) -> Self {
        let copy = || -> Result<Self> {
            let (k, v) = self.live()?;
            Self::exact(k.copy()?, v.copy()?)
        };
        copy().expect("copying a key/value cache")
    }
}

/// `t` (B, H, T, D) at the front of zeroed buffer of `room` positions.
fn with_room(t: &Tensor, room: usize) -> Result<Tensor> {
    let (b, h, _, d) = t.dims4()?;
    let buf = Tensor::zeros((b, h, room, d), t.dtype(), t.device())?;
    buf.slice_set(&t.contiguous()?, 2, 0)?;
    Ok(buf)
}

/// Per layer, the cached keys and values (B, kv heads, T, head dim).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<Layer>>,
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
            Some(Some(l)) => Ok(l.len),
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
        let n = k.dim(2)?;
        let layer = match self.layers[i].take() {
            Some(mut l) => {
                l.reserve(n)?;
                l.k.slice_set(&k.contiguous()?, 2, l.len)?;
                l.v.slice_set(&v.contiguous()?, 2, l.len)?;
                l.len += n;
                l
            }
            None => {
                let room = n.max(1).next_multiple_of(ROOM);
                Layer {
                    k: with_room(k, room)?,
                    v: with_room(v, room)?,
                    len: n,
                }
            }
        };
        let live = layer.live()?;
        self.layers[i] = Some(layer);
        Ok(live)
    }

    /// Forgets every position from `len` on (a conversation that changed after them).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        for l in self.layers.iter_mut().flatten() {
            l.len = l.len.min(len);
        }
        Ok(())
    }

    /// Replaces every layer's cached keys and values by `f` of them.
    fn rebuild(&mut self, f: impl Fn(Tensor) -> Result<Tensor>) -> Result<()> {
        for slot in self.layers.iter_mut() {
            if let Some(l) = slot.take() {
                let (k, v) = l.live()?;
                *slot = Some(Layer::exact(f(k)?, f(v)?)?);
            }
        }
        Ok(())
    }

    /// Puts `n` zero positions before every cached one (a shorter row made as long as the batch
    /// it joins; the caller masks them out).
    pub fn pad_front(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.rebuild(|t| {
            let (b, h, _, d) = t.dims4()?;
            let zeros = Tensor::zeros((b, h, n, d), t.dtype(), t.device())?;
            Tensor::cat(&[&zeros, &t], 2)
        })
    }

    /// Forgets the first `n` positions of every row (columns that only padding is left in).
    pub fn drop_front(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.rebuild(|t| {
            let len = t.dim(2)?;
            t.narrow(2, n.min(len), len.saturating_sub(n))
        })
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
                (Some(m), Some(t)) => {
                    let ((k, v), (ok, ov)) = (m.live()?, t.live()?);
                    Some(Layer::exact(
                        Tensor::cat(&[&k, &ok], 0)?,
                        Tensor::cat(&[&v, &ov], 0)?,
                    )?)
                }
                (None, t) => t.clone(),
                (m, None) => m,
            };
        }
        Ok(())
    }

    /// Keeps only the rows `rows` of the batch (finished sequences leave a batched decode).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        self.rebuild(|t| t.contiguous()?.index_select(rows, 0))
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

    /// Appending past the buffers' room moves the cached positions to larger buffers intact;
    /// a clone has buffers of its own, so appending to one leaves the other as it was.
    #[test]
    fn grows_in_place_and_clones_deeply() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = KvCache::new(1);
        let mut want = Vec::new();
        for i in 0..(2 * ROOM + 3) {
            let t = Tensor::full(i as f32, (1, 2, 1, 3), &dev)?;
            c.append(0, &t, &t)?;
            want.extend(std::iter::repeat_n(i as f32, 3));
        }
        let copy = c.clone();
        let t = Tensor::full(-1f32, (1, 2, 1, 3), &dev)?;
        let (k, _) = c.append(0, &t, &t)?;
        assert_eq!(k.dims(), &[1, 2, 2 * ROOM + 4, 3]);
        let head0: Vec<f32> = k.get(0)?.get(0)?.flatten_all()?.to_vec1()?;
        assert_eq!(&head0[..want.len()], &want[..]);
        assert_eq!(copy.len()?, 2 * ROOM + 3);
        let mut copy = copy;
        let (k2, _) = copy.append(0, &t.zeros_like()?, &t.zeros_like()?)?;
        let last: Vec<f32> = k2.narrow(2, 2 * ROOM + 3, 1)?.flatten_all()?.to_vec1()?;
        assert_eq!(last, vec![0.0; 6]);
        let (k, _) = c.append(0, &t.narrow(2, 0, 0)?, &t.narrow(2, 0, 0)?)?;
        let last: Vec<f32> = k.narrow(2, 2 * ROOM + 3, 1)?.flatten_all()?.to_vec1()?;
        assert_eq!(last, vec![-1.0; 6]);
        Ok(())
    }
}
