//! The seeded generator behind every case: SplitMix64, enough to feed `arbitrary`.

/// SplitMix64 (Steele, Lea and Flood): one u64 of state, full period, no bias worth noting.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` random bytes: the raw material `arbitrary::Unstructured` draws a case's choices from.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// The seed of case `index` of the reader `name` under the campaign seed `seed`: cases are
/// independent, so any one can be replayed alone.
pub fn case_seed(seed: u64, name: &str, index: usize) -> u64 {
    let mut h = SplitMix::new(seed ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    for b in name.bytes() {
        h = SplitMix::new(h.next_u64() ^ u64::from(b));
    }
    h.next_u64()
}
