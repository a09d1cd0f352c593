//! The stored types a `QuantMatrix` can hold, and what each one must provide to the kernels.
//!
//! Every type is kept in GGML's exact block layout (the bytes of a GGUF tensor), so a row of
//! `cols` weights is `cols / block` blocks of `bytes` each. A type provides two things: the dot
//! product of an f32 input row with one stored row, and the decoding of whole blocks to f32.

use super::simd::Simd;
use candle_core::quantized::GgmlDType;
use candle_core::Result;

/// The stored types the kernels support (GGML's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantType {
    /// 32 weights: an f16 scale and 4-bit values centred on 8 (18 bytes).
    Q4_0,
    /// 32 weights: f16 scale and minimum, 4-bit values (20 bytes).
    Q4_1,
    /// 32 weights: an f16 scale and 8-bit signed values (34 bytes).
    Q8_0,
    /// 256 weights: 8 groups of 32 with 6-bit scales and minimums, 4-bit values (144 bytes).
    Q4K,
    /// 256 weights: as Q4_K with a fifth bit per value (176 bytes).
    Q5K,
    /// 256 weights: 16 groups of 16 with 8-bit scales, 6-bit values (210 bytes).
    Q6K,
    /// IEEE half precision (2 bytes a weight).
    F16,
    /// bfloat16 (2 bytes a weight).
    BF16,
    /// f32 (4 bytes a weight).
    F32,
}

impl QuantType {
    /// Every stored type.
    pub const ALL: [QuantType; 9] = [
        Self::Q4_0,
        Self::Q4_1,
        Self::Q8_0,
        Self::Q4K,
        Self::Q5K,
        Self::Q6K,
        Self::F16,
        Self::BF16,
        Self::F32,
    ];

    /// The kernels' type for a GGML type, or an error naming the unsupported one.
    pub fn from_ggml(dtype: GgmlDType) -> Result<Self> {
        Ok(match dtype {
            GgmlDType::Q4_0 => Self::Q4_0,
            GgmlDType::Q4_1 => Self::Q4_1,
            GgmlDType::Q8_0 => Self::Q8_0,
            GgmlDType::Q4K => Self::Q4K,
            GgmlDType::Q5K => Self::Q5K,
            GgmlDType::Q6K => Self::Q6K,
            GgmlDType::F16 => Self::F16,
            GgmlDType::BF16 => Self::BF16,
            GgmlDType::F32 => Self::F32,
            other => candle_core::bail!(
                "quantised matrix: {other:?} is not supported (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, \
                 Q6_K, F16, BF16 and F32 are)"
            ),
        })
    }

    /// The GGML type with this layout.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4K => GgmlDType::Q4K,
            Self::Q5K => GgmlDType::Q5K,
            Self::Q6K => GgmlDType::Q6K,
            Self::F16 => GgmlDType::F16,
            Self::BF16 => GgmlDType::BF16,
            Self::F32 => GgmlDType::F32,
        }
    }

    /// Weights per block (1 for the float types).
    pub fn block(self) -> usize {
        self.ggml().block_size()
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.ggml().type_size()
    }

    /// True for F16, BF16 and F32 (no blocks, no scales).
    pub fn is_float(self) -> bool {
        matches!(self, Self::F16 | Self::BF16 | Self::F32)
    }
}

/// Partial sums of a row's dot product: two sets of 16 lanes (a format adds its groups to
/// them alternately, so that two chains of multiply-adds run at once) and a scalar.
pub(crate) struct Acc<S> {
    /// Per-lane sums of scaled group products (even groups).
    pub lanes: S,
    /// Per-lane sums of scaled group products (odd groups).
    pub lanes2: S,
    /// Terms that are a block constant times the sum of the block's inputs.
    pub corr: f32,
}

impl<S: Simd> Acc<S> {
    #[inline(always)]
    fn new() -> Self {
        Self {
            lanes: S::zero(),
            lanes2: S::zero(),
            corr: 0.0,
        }
    }
}

/// What the kernels need of a stored type; implemented by zero-sized types, one per type.
///
/// Every method is `#[inline(always)]` and generic over the vector type (closures are
/// avoided for the same reason): the bodies must be compiled inside the `#[target_feature]`
/// builds of `kernels.rs`, not called as baseline-x86-64 code.
pub(crate) trait Format {
    /// Weights per block (1 for the float types).
    const BLOCK: usize;
    /// Bytes per block.
    const BYTES: usize;

    /// Adds `x · block` to `acc`: `b` holds the block's bytes, `x` its inputs, `s` the sums
    /// of `x` over its groups of 32 (block types; the float types override `dot_row`).
    #[inline(always)]
    fn dot_block<S: Simd>(_b: &[u8], _x: &[f32], _s: &[f32], _acc: &mut Acc<S>) {}

    /// Decodes one block to f32, exactly as GGML (and candle) dequantise it.
    fn decode_block<S: Simd>(b: &[u8], y: &mut [f32]);

    /// `x · row` for one stored row; `sums` holds the sums of `x` over each group of 32
    /// values (unused by the float types).
    /// Blocks go alternately to two accumulators (two independent chains again); pairs of
    /// blocks come from `chunks_exact`, so every index into a block is checked at compile
    /// time.
    #[inline(always)]
    fn dot_row<S: Simd>(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        let (mut a, mut b) = (Acc::<S>::new(), Acc::<S>::new());
        let sb = Self::BLOCK / 32;
        let pairs = row.chunks_exact(2 * Self::BYTES);
        let rest = pairs.remainder();
        let xs = x.chunks_exact(2 * Self::BLOCK);
        let ss = sums.chunks_exact(2 * sb);
        let (x_rest, s_rest) = (xs.remainder(), ss.remainder());
        for ((p, x2), s2) in pairs.zip(xs).zip(ss) {
            let (b0, b1) = p.split_at(Self::BYTES);
            let (x0, x1) = x2.split_at(Self::BLOCK);
            Self::dot_block(b0, x0, &s2[..sb], &mut a);
            Self::dot_block(b1, x1, &s2[sb..], &mut b);
        }
        if rest.len() == Self::BYTES {
            Self::dot_block(rest, x_rest, s_rest, &mut a);
        }
        let lanes = a.lanes.add(a.lanes2).add(b.lanes.add(b.lanes2));
        lanes.sum() + (a.corr + b.corr)
    }

    /// `x · row` for four stored rows at once (the one-row product's main loop); by default
    /// four `dot_row`s, the 32-weight block types share each input load (`rows4.rs`).
    #[inline(always)]
    fn dot_rows4<S: Simd>(rows: [&[u8]; 4], x: &[f32], sums: &[f32]) -> [f32; 4] {
        [
            Self::dot_row::<S>(rows[0], x, sums),
            Self::dot_row::<S>(rows[1], x, sums),
            Self::dot_row::<S>(rows[2], x, sums),
            Self::dot_row::<S>(rows[3], x, sums),
        ]
    }

    /// Decodes whole blocks to f32.
    #[inline(always)]
    fn decode<S: Simd>(blocks: &[u8], out: &mut [f32]) {
        for (b, y) in blocks
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(Self::BLOCK))
        {
            Self::decode_block::<S>(b, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_ggmls() {
        let all = [
            (QuantType::Q4_0, 32, 18),
            (QuantType::Q4_1, 32, 20),
            (QuantType::Q8_0, 32, 34),
            (QuantType::Q4K, 256, 144),
            (QuantType::Q5K, 256, 176),
            (QuantType::Q6K, 256, 210),
            (QuantType::F16, 1, 2),
            (QuantType::BF16, 1, 2),
            (QuantType::F32, 1, 4),
        ];
        for (t, block, bytes) in all {
            assert_eq!((t.block(), t.block_bytes()), (block, bytes), "{t:?}");
            assert_eq!(QuantType::from_ggml(t.ggml()).unwrap(), t);
        }
        assert!(QuantType::from_ggml(GgmlDType::Q5_0).is_err());
    }
}
