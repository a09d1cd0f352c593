//! The two kernels every product is built from, compiled once per instruction set and per
//! stored type, and the dispatch to them:
//!
//! - `dot_rows`: one f32 input row times a band of stored rows (the one-row product);
//! - `dot_rows_inputs`: a few input rows times a band of stored rows (`dot_rows` for each,
//!   with each block of the 32-weight types decoded once per four inputs, or eight for Q4_0
//!   and Q4_1, the inputs interleaved block by block);
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
use super::rows4::{dot_inputs, Block32};
use super::simd::{Portable, Simd};
#[cfg(target_arch = "x86_64")]
use super::simd_x86::{Avx2, Avx512};

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
        // The next four rows, while these four are computed: four short streams at once
        // train the hardware prefetcher poorly, and in a decoding step every weight comes
        // from memory (a step of SmolLM2-135M at one thread: 17 -> 11 ms).
        let next = (i + 1) * 4 * row_bytes;
        S::prefetch(&rows[next.min(rows.len())..(next + 4 * row_bytes).min(rows.len())]);
        let (a, b) = q.split_at(2 * row_bytes);
        let (r0, r1) = a.split_at(row_bytes);
        let (r2, r3) = b.split_at(row_bytes);
        y4.copy_from_slice(&F::dot_rows4::<S>([r0, r1, r2, r3], x, sums));
    }
    for (row, yi) in rest.chunks_exact(row_bytes).zip(ys.into_remainder()) {
        *yi = F::dot_row::<S>(row, x, sums);
    }
}

/// `dot_rows_body` for several input rows on a 32-weight block type: `x` holds the inputs one
/// after another and `xi` the same interleaved in groups of `inputs_per_group` (`Interleaved`),
/// `sums` their group sums, and `y` their products with the rows, one run of row-count values
/// per input. The inputs go up to eight at a time through `rows4::dot_inputs` (four stored
/// rows at a time for up to four inputs, two for more) and the rows that `dot_rows_body`
/// leaves to `dot_row` through `dot_row` too, so every input gets the numbers `dot_rows_body`
/// gives it alone.
#[inline(always)]
fn dot_rows_inputs_body<B: Block32, S: Simd>(
    rows: &[u8],
    row_bytes: usize,
    (x, xi): (&[f32], &[f32]),
    sums: &[f32],
    y: &mut [f32],
) {
    let n = rows.len() / row_bytes;
    let inputs = y.len() / n;
    let (k, kb) = (x.len() / inputs, sums.len() / inputs);
    let per = per_group::<B>();
    let xs = x.chunks(per * k).zip(xi.chunks(per * k));
    let groups = xs.zip(sums.chunks(per * kb)).zip(y.chunks_mut(per * n));
    for ((xg, sg), yg) in groups {
        let rows = (rows, row_bytes);
        match yg.len() / n {
            1 => inputs_group::<B, S, 4, 1>(rows, xg, sg, yg),
            2 => inputs_group::<B, S, 4, 2>(rows, xg, sg, yg),
            3 => inputs_group::<B, S, 4, 3>(rows, xg, sg, yg),
            4 => inputs_group::<B, S, 4, 4>(rows, xg, sg, yg),
            5 => inputs_group::<B, S, 2, 5>(rows, xg, sg, yg),
            6 => inputs_group::<B, S, 2, 6>(rows, xg, sg, yg),
            7 => inputs_group::<B, S, 2, 7>(rows, xg, sg, yg),
            _ => inputs_group::<B, S, 2, 8>(rows, xg, sg, yg),
        }
    }
}

/// The inputs `dot_inputs` takes at once for type `B`: eight, or four where eight do not pay.
const fn per_group<B: Block32>() -> usize {
    if B::EIGHT_INPUTS {
        8
    } else {
        4
    }
}

/// `dot_rows_inputs_body` for exactly `R` inputs (1 to 8), laid out as there, `Q` stored
/// rows at a time (2 or 4).
#[inline(always)]
fn inputs_group<B: Block32, S: Simd, const Q: usize, const R: usize>(
    (rows, row_bytes): (&[u8], usize),
    (x, xi): (&[f32], &[f32]),
    sums: &[f32],
    y: &mut [f32],
) {
    let n = rows.len() / row_bytes;
    let (k, kb) = (x.len() / R, sums.len() / R);
    // The rows `dot_rows_body` takes four at a time, then the rest one at a time.
    let (fours, rest) = rows.split_at(n / 4 * 4 * row_bytes);
    let step = Q * row_bytes;
    for (q, band) in fours.chunks_exact(step).enumerate() {
        // The next rows while these are computed: a step's weights come from memory.
        let next = (q + 1) * step;
        S::prefetch(&fours[next.min(fours.len())..(next + step).min(fours.len())]);
        let mut b = [band; Q];
        for (i, bi) in b.iter_mut().enumerate() {
            *bi = &band[i * row_bytes..(i + 1) * row_bytes];
        }
        let t = dot_inputs::<B, S, Q, R>(b, xi);
        for (yr, tr) in y.chunks_exact_mut(n).zip(&t) {
            yr[Q * q..Q * q + Q].copy_from_slice(tr);
        }
    }
    let first_rest = n - rest.len() / row_bytes;
    for (i, row) in rest.chunks_exact(row_bytes).enumerate() {
        let inputs = x.chunks_exact(k).zip(sums.chunks_exact(kb));
        for (yr, (xr, sr)) in y.chunks_exact_mut(n).zip(inputs) {
            yr[first_rest + i] = B::dot_row::<S>(row, xr, sr);
        }
    }
}

/// Generates the three builds of a generic kernel body over `F: $bound`: `$avx512`, `$avx2`
/// (x86-64 only, `unsafe`: the caller checks the CPU) and `$portable`, and `$on`, which runs
/// the build for an `Isa` (the portable one where the CPU lacks it).
macro_rules! builds {
    ($bound:ident; $body:ident, $on:ident, $avx512:ident, $avx2:ident, $portable:ident,
     ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn $avx512<F: $bound>($($arg: $ty),*) {
            $body::<F, Avx512>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $avx2<F: $bound>($($arg: $ty),*) {
            $body::<F, Avx2>($($arg),*)
        }

        fn $portable<F: $bound>($($arg: $ty),*) {
            $body::<F, Portable>($($arg),*)
        }

        fn $on<F: $bound>(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if isa.supported() {
                match isa {
                    // SAFETY: the CPU has the features these builds were compiled for
                    // (checked above).
                    Isa::Avx512Vnni | Isa::Avx512 => {
                        return unsafe { $avx512::<F>($($arg),*) }
                    }
                    Isa::Avx2 => return unsafe { $avx2::<F>($($arg),*) },
                    Isa::Portable => {}
                }
            }
            let _ = isa;
            $portable::<F>($($arg),*)
        }
    };
}

builds!(Format; dot_rows_body, dot_rows_on, dot_rows_avx512, dot_rows_avx2, dot_rows_portable,
    (rows: &[u8], row_bytes: usize, x: &[f32], sums: &[f32], y: &mut [f32]));

/// `F::decode` on vector type `S`.
#[inline(always)]
fn decode_body<F: Format, S: Simd>(blocks: &[u8], out: &mut [f32]) {
    F::decode::<S>(blocks, out)
}

builds!(Block32; dot_rows_inputs_body, dot_rows_inputs_on, dot_rows_inputs_avx512,
    dot_rows_inputs_avx2, dot_rows_inputs_portable,
    (rows: &[u8], row_bytes: usize, x: (&[f32], &[f32]), sums: &[f32], y: &mut [f32]));

builds!(Format; decode_body, decode_on, decode_avx512, decode_avx2, decode_portable,
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

/// How many inputs at a time `dot_rows_inputs` takes for type `ty`, and so how `xi` must be
/// interleaved (`Interleaved`); `None` for the types that take one input at a time.
pub(crate) fn inputs_per_group(ty: QuantType) -> Option<usize> {
    match ty {
        QuantType::Q4_0 => Some(per_group::<Q4_0>()),
        QuantType::Q4_1 => Some(per_group::<Q4_1>()),
        QuantType::Q8_0 => Some(per_group::<Q8_0>()),
        _ => None,
    }
}

/// `dot_rows` for several input rows: `x` holds them one after another, `xi` the same
/// interleaved as `inputs_per_group` says (empty where it says `None`), `sums` their group
/// sums likewise (empty for float types), and `y` their products with the stored rows, one
/// run of row-count values per input. Each input's run is bit for bit what `dot_rows` gives
/// for it alone; the 32-weight block types decode each block once per four inputs (eight
/// for Q4_0 and Q4_1), the other types run `dot_rows` for each input.
pub(crate) fn dot_rows_inputs(
    isa: Isa,
    ty: QuantType,
    (rows, row_bytes): (&[u8], usize),
    (x, xi): (&[f32], &[f32]),
    sums: &[f32],
    y: &mut [f32],
) {
    let both = (x, xi);
    match ty {
        QuantType::Q4_0 => dot_rows_inputs_on::<Q4_0>(isa, rows, row_bytes, both, sums, y),
        QuantType::Q4_1 => dot_rows_inputs_on::<Q4_1>(isa, rows, row_bytes, both, sums, y),
        QuantType::Q8_0 => dot_rows_inputs_on::<Q8_0>(isa, rows, row_bytes, both, sums, y),
        _ => {
            let inputs = y.len() / (rows.len() / row_bytes);
            let (k, kb) = (x.len() / inputs, sums.len() / inputs);
            for (j, yj) in y.chunks_mut(y.len() / inputs).enumerate() {
                let (xj, sj) = (&x[j * k..(j + 1) * k], &sums[j * kb..(j + 1) * kb]);
                dot_rows(isa, ty, (rows, row_bytes), xj, sj, yj);
            }
        }
    }
}

/// Decodes the whole blocks of type `ty` in `blocks` into `out` (one f32 per weight).
pub(crate) fn decode(isa: Isa, ty: QuantType, blocks: &[u8], out: &mut [f32]) {
    with_format!(ty, decode_on(isa, blocks, out))
}
