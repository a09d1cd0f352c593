//! Input rows laid out block by block for the several-input kernels (`rows4::dot_inputs`):
//! within each group of inputs that the kernel takes at once, the first 32 values of every
//! input, then the next 32 of every input, and so on, starting on a 64-byte boundary. The
//! kernel then reads a block of all its inputs from one place, in whole cache lines.

/// A copy of `m` input rows of `k` values, interleaved per group of `per` rows (the last
/// group may hold fewer).
pub(crate) struct Interleaved {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

/// f32 values per 64-byte cache line.
const LINE: usize = 16;

impl Interleaved {
    /// Interleaves `x` (`m` rows of `x.len() / m` values, a multiple of 32) in groups of
    /// `per` rows.
    pub(crate) fn new(x: &[f32], m: usize, per: usize) -> Self {
        let k = x.len() / m;
        let mut buf = vec![0f32; x.len() + LINE];
        // The first value on a line boundary: every block of 32 is then two whole lines.
        let start = buf.as_ptr().align_offset(4 * LINE).min(LINE);
        let out = &mut buf[start..start + x.len()];
        for (group, dst) in x.chunks(per * k).zip(out.chunks_mut(per * k)) {
            let rows = group.len() / k;
            for (r, row) in group.chunks_exact(k).enumerate() {
                for (j, block) in row.chunks_exact(32).enumerate() {
                    let at = (j * rows + r) * 32;
                    dst[at..at + 32].copy_from_slice(block);
                }
            }
        }
        Self {
            buf,
            start,
            len: x.len(),
        }
    }

    /// The interleaved values: group g (rows `g * per..`) from `g * per * k` on.
    pub(crate) fn values(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_block_by_block_and_aligned() {
        // 5 rows of 64 values in groups of 2: [r0 b0, r1 b0, r0 b1, r1 b1], ..., [r4 b0, r4 b1].
        let (m, k) = (5, 64);
        let x: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
        let il = Interleaved::new(&x, m, 2);
        let v = il.values();
        assert_eq!(v.as_ptr() as usize % 64, 0);
        let block = |r: usize, j: usize| &x[r * k + 32 * j..r * k + 32 * j + 32];
        assert_eq!(&v[0..32], block(0, 0));
        assert_eq!(&v[32..64], block(1, 0));
        assert_eq!(&v[64..96], block(0, 1));
        assert_eq!(&v[96..128], block(1, 1));
        assert_eq!(&v[2 * k + 32..2 * k + 64], block(3, 0));
        assert_eq!(&v[4 * k..4 * k + 32], block(4, 0));
        assert_eq!(&v[4 * k + 32..], block(4, 1));
    }
}
