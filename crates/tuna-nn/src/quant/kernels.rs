//! The two kernels every product is built from, compiled once per instruction set and per
//! stored type, and the dispatch to them:
//!
//! - `dot_rows`: one f32 input row times a band of stored rows (the one-row product);
//! - `decode`: whole blocks to f32 (the panels the many-row products hand to `gemm`).
//!
//! The generic bodies are `#[inline(always)]` into functions carrying
//! `#[target_feature(enable = ...)]`, so the same source is vectorised for AVX-512 or AVX2;
//! which one runs is decided at run time (`Isa`), never by compile-time target features.

use super::float::{BF16, F16, F32};
use super::format::{Format, QuantType};
use super::isa::Isa;
use super::kquant::{Q4K, Q5K, Q6K};
use super::legacy::{Q4_0, Q4_1, Q8_0};
use super::simd::{Portable, Simd};
#[cfg(target_arch = "x86_64")]
use super::simd_x86::{Avx2, Avx512};

/// Bands of more bytes than this prefetch their next rows (`dot_rows_body`).
const PREFETCH_ABOVE: usize = 2 << 20;

/// `y[i] = x · row i` for the rows of `rows`, each `row_bytes` long: four at a time
/// (`Format::dot_rows4`), then one at a time.
#[inline(always)]
fn dot_rows_body<F: Format, S: Simd>(
    rows: &[u8],
    row_bytes: usize,
    x: &[f32],
    sums: &[f32],
    y: &mut [f32],
) {
    let quads = rows.chunks_exact(4 * row_bytes);
    let rest = quads.remainder();
    let mut ys = y.chunks_exact_mut(4);
    for (i, (q, y4)) in quads.zip(&mut ys).enumerate() {
        // The next four rows, while these four are computed (four short streams at once
        // train the hardware prefetcher poorly), for bands too large to stay in cache
        // (on smaller ones the prefetches only cost time).
        if rows.len() > PREFETCH_ABOVE {
            let next = (i + 1) * 4 * row_bytes;
            S::prefetch(&rows[next.min(rows.len())..(next + 4 * row_bytes).min(rows.len())]);
        }
        let (a, b) = q.split_at(2 * row_bytes);
        let (r0, r1) = a.split_at(row_bytes);
        let (r2, r3) = b.split_at(row_bytes);
        y4.copy_from_slice(&F::dot_rows4::<S>([r0, r1, r2, r3], x, sums));
    }
    for (row, yi) in rest.chunks_exact(row_bytes).zip(ys.into_remainder()) {
        *yi = F::dot_row::<S>(row, x, sums);
    }
}

/// Generates the three builds of a generic kernel body: `$avx512`, `$avx2` (x86-64 only,
/// `unsafe`: the caller checks the CPU) and `$portable`.
macro_rules! builds {
    ($body:ident, $avx512:ident, $avx2:ident, $portable:ident,
     ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn $avx512<F: Format>($($arg: $ty),*) {
            $body::<F, Avx512>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $avx2<F: Format>($($arg: $ty),*) {
            $body::<F, Avx2>($($arg),*)
        }

        fn $portable<F: Format>($($arg: $ty),*) {
            $body::<F, Portable>($($arg),*)
        }
    };
}

builds!(dot_rows_body, dot_rows_avx512, dot_rows_avx2, dot_rows_portable,
    (rows: &[u8], row_bytes: usize, x: &[f32], sums: &[f32], y: &mut [f32]));

/// `F::decode` on vector type `S`.
#[inline(always)]
fn decode_body<F: Format, S: Simd>(blocks: &[u8], out: &mut [f32]) {
    F::decode::<S>(blocks, out)
}

builds!(decode_body, decode_avx512, decode_avx2, decode_portable,
    (blocks: &[u8], out: &mut [f32]));

/// Runs `$run::<F>` with `F` the format of `$ty`.
macro_rules! with_format {
    ($ty:expr, $run:ident($($arg:expr),*)) => {
        match $ty {
            QuantType::Q4_0 => $run::<Q4_0>($($arg),*),
            QuantType::Q4_1 => $run::<Q4_1>($($arg),*),
            QuantType::Q8_0 => $run::<Q8_0>($($arg),*),
            QuantType::Q4K => $run::<Q4K>($($arg),*),
            QuantType::Q5K => $run::<Q5K>($($arg),*),
            QuantType::Q6K => $run::<Q6K>($($arg),*),
            QuantType::F16 => $run::<F16>($($arg),*),
            QuantType::BF16 => $run::<BF16>($($arg),*),
            QuantType::F32 => $run::<F32>($($arg),*),
        }
    };
}

/// The build of `dot_rows` for `isa` (the portable one where the CPU lacks `isa`).
fn dot_rows_on<F: Format>(
    isa: Isa,
    rows: &[u8],
    row_bytes: usize,
    x: &[f32],
    sums: &[f32],
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if isa.supported() {
        match isa {
            // SAFETY: the CPU has the features these builds were compiled for (checked above).
            Isa::Avx512 => return unsafe { dot_rows_avx512::<F>(rows, row_bytes, x, sums, y) },
            Isa::Avx2 => return unsafe { dot_rows_avx2::<F>(rows, row_bytes, x, sums, y) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    dot_rows_portable::<F>(rows, row_bytes, x, sums, y)
}

/// The build of `decode` for `isa` (the portable one where the CPU lacks `isa`).
fn decode_on<F: Format>(isa: Isa, blocks: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa.supported() {
        match isa {
            // SAFETY: the CPU has the features these builds were compiled for (checked above).
            Isa::Avx512 => return unsafe { decode_avx512::<F>(blocks, out) },
            Isa::Avx2 => return unsafe { decode_avx2::<F>(blocks, out) },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    decode_portable::<F>(blocks, out)
}

/// `y[i] = x · row i` for consecutive stored rows of type `ty` (`row_bytes` each); `sums`
/// holds the sums of `x` over its groups of 32 (`lanes::sums32`; empty for float types).
pub(crate) fn dot_rows(
    isa: Isa,
    ty: QuantType,
    (rows, row_bytes): (&[u8], usize),
    x: &[f32],
    sums: &[f32],
    y: &mut [f32],
) {
    with_format!(ty, dot_rows_on(isa, rows, row_bytes, x, sums, y))
}

/// Decodes the whole blocks of type `ty` in `blocks` into `out` (one f32 per weight).
pub(crate) fn decode(isa: Isa, ty: QuantType, blocks: &[u8], out: &mut [f32]) {
    with_format!(ty, decode_on(isa, blocks, out))
}
