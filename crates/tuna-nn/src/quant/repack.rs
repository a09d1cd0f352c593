//! The 32-weight block types (Q4_0, Q4_1, Q8_0) laid out for integer dot products
//! (`vnni.rs`): stored rows in groups of 16, side by side, so that lane `i` of a 512-bit
//! vector holds four consecutive weights of row `i` as bytes, and one instruction multiplies
//! 16 rows by the same four inputs. A block of a group (16 rows by 32 weights) is 256 bytes
//! of 4-bit weights (512 of 8-bit ones), then its 16 scales and 16 offsets as f32 (128
//! bytes), and a group's blocks follow each other: a product reads one stream of bytes.
//!
//! Every type becomes `weight = d * u + c` with `u` unsigned: Q4_0's 4-bit `q` with
//! `c = -8 d`, Q4_1's `q` with its minimum, Q8_0's signed byte plus 128 with `c = -128 d`.
//! 4-bit layout, chunk `j` of a block (64 bytes, weights `8j..8j + 8`): byte `4 i + t` holds
//! weight `8j + t` of row `i` in its low nibble and weight `8j + 4 + t` in its high one.
//! 8-bit layout, chunk `j` (weights `4j..4j + 4`): byte `4 i + t` is weight `4j + t` of row
//! `i`. Rows past the matrix's last (the last group's padding) are zero.

use super::format::QuantType;
use super::simd::{f16_to_f32, u16_at};
use rayon::prelude::*;

/// Stored rows per group: the lanes of a 512-bit vector of i32.
pub(crate) const ROWS: usize = 16;

/// A weight matrix of a 32-weight block type, repacked in groups of 16 rows.
#[derive(Clone)]
pub(crate) struct Repacked {
    /// 4-bit weights (two to a byte), else 8-bit.
    pub(crate) nibbles: bool,
    /// Groups of 16 rows (the last one padded with zero rows).
    pub(crate) groups: usize,
    /// Blocks of 32 weights per row.
    pub(crate) blocks: usize,
    /// Per group, per block: the weights (`weight_bytes()`), then 16 scales `d` and 16
    /// offsets `c` (f32, little-endian): `stride()` bytes.
    pub(crate) data: Vec<u8>,
}

impl std::fmt::Debug for Repacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repacked")
            .field("nibbles", &self.nibbles)
            .field("groups", &self.groups)
            .field("blocks", &self.blocks)
            .finish_non_exhaustive()
    }
}

impl Repacked {
    /// `bytes` (`rows` stored rows of `cols` weights of type `ty`, GGML's layout) repacked;
    /// `None` for the types other than Q4_0, Q4_1 and Q8_0.
    pub(crate) fn new(ty: QuantType, bytes: &[u8], (rows, cols): (usize, usize)) -> Option<Self> {
        let nibbles = match ty {
            QuantType::Q4_0 | QuantType::Q4_1 => true,
            QuantType::Q8_0 => false,
            _ => return None,
        };
        let (blocks, groups) = (cols / 32, rows.div_ceil(ROWS));
        let mut out = Self {
            nibbles,
            groups,
            blocks,
            data: Vec::new(),
        };
        let (stride, wb, stored) = (out.stride(), out.weight_bytes(), ty.block_bytes());
        out.data = vec![0; groups * blocks * stride];
        let row_bytes = blocks * stored;
        let per_group = (blocks * stride).max(1);
        out.data
            .par_chunks_mut(per_group)
            .enumerate()
            .for_each(|(g, group)| {
                for i in 0..ROWS.min(rows - g * ROWS) {
                    let row = &bytes[(g * ROWS + i) * row_bytes..][..row_bytes];
                    for (b, block) in row.chunks_exact(stored).enumerate() {
                        let (d, c, u) = unsigned_block(ty, block);
                        let (w, s) = group[b * stride..(b + 1) * stride].split_at_mut(wb);
                        place(nibbles, &u, i, w);
                        s[4 * i..4 * i + 4].copy_from_slice(&d.to_le_bytes());
                        s[4 * (ROWS + i)..4 * (ROWS + i) + 4].copy_from_slice(&c.to_le_bytes());
                    }
                }
            });
        Some(out)
    }

    /// Bytes of the weights of one block of a group: 16 rows of 32 weights of 4 or 8 bits.
    pub(crate) fn weight_bytes(&self) -> usize {
        if self.nibbles {
            ROWS * 16
        } else {
            ROWS * 32
        }
    }

    /// Bytes of one block of a group: its weights, scales and offsets.
    pub(crate) fn stride(&self) -> usize {
        self.weight_bytes() + 2 * ROWS * 4
    }
}

/// A stored block as `(d, c, u)`: weight `t` is `d * u[t] + c`, `u` unsigned.
fn unsigned_block(ty: QuantType, b: &[u8]) -> (f32, f32, [u8; 32]) {
    let d = f16_to_f32(u16_at(b, 0));
    let mut u = [0u8; 32];
    match ty {
        QuantType::Q8_0 => {
            for (t, q) in b[2..34].iter().enumerate() {
                u[t] = (*q as i8 as i16 + 128) as u8;
            }
            (d, -128.0 * d, u)
        }
        _ => {
            let (c, qs) = match ty {
                QuantType::Q4_1 => (f16_to_f32(u16_at(b, 2)), &b[4..20]),
                _ => (-8.0 * d, &b[2..18]),
            };
            for (t, q) in qs.iter().enumerate() {
                u[t] = q & 15;
                u[t + 16] = q >> 4;
            }
            (d, c, u)
        }
    }
}

/// Writes row `i`'s 32 weights `u` into the block `w` of its group (the layouts above).
fn place(nibbles: bool, u: &[u8; 32], i: usize, w: &mut [u8]) {
    for (k, &v) in u.iter().enumerate() {
        if nibbles {
            let (chunk, high, t) = (k / 8, (k % 8) / 4, k % 4);
            w[chunk * 64 + 4 * i + t] |= v << (4 * high);
        } else {
            w[(k / 4) * 64 + 4 * i + k % 4] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::matrix::QuantMatrix;
    use crate::quant::testing::weights;
    use candle_core::quantized::GgmlDType;
    use candle_core::Result;

    /// Weight `k` of row `r` read back from the repacked layout.
    fn weight(p: &Repacked, r: usize, k: usize) -> f32 {
        let (g, i, b, t) = (r / ROWS, r % ROWS, k / 32, k % 32);
        let w = &p.data[(g * p.blocks + b) * p.stride()..];
        let u = if p.nibbles {
            (w[(t / 8) * 64 + 4 * i + t % 4] >> (4 * ((t % 8) / 4))) & 15
        } else {
            w[(t / 4) * 64 + 4 * i + t % 4]
        };
        let f = |at: usize| f32::from_le_bytes(w[at..at + 4].try_into().unwrap());
        let s = p.weight_bytes();
        f(s + 4 * i) * u as f32 + f(s + 4 * (ROWS + i))
    }

    /// Every weight of a 21-row matrix (a padded second group) reads back as its decoded
    /// value, for the three types; the padding rows are zero.
    #[test]
    fn repacked_weights_read_back_as_decoded() -> Result<()> {
        let (n, k) = (21, 96);
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let w = QuantMatrix::quantize(&weights(n, k, 3)?, dtype)?;
            let p = Repacked::new(w.quant_type(), w.bytes(), (n, k)).expect("a block type");
            let want: Vec<f32> = w.dequantize()?.flatten_all()?.to_vec1()?;
            for r in 0..n {
                for c in 0..k {
                    let got = weight(&p, r, c);
                    let tol = 1e-6 * want[r * k + c].abs().max(1e-3);
                    assert!((got - want[r * k + c]).abs() <= tol, "{dtype:?} ({r}, {c})");
                }
            }
            assert_eq!(weight(&p, 31, 5), 0.0, "{dtype:?} padding");
        }
        let f16 = QuantMatrix::quantize(&weights(2, 32, 1)?, GgmlDType::F16)?;
        assert!(Repacked::new(f16.quant_type(), f16.bytes(), (2, 32)).is_none());
        Ok(())
    }
}
