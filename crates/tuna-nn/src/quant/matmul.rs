//! The products of a `QuantMatrix` with f32 inputs: `x W^T` (the layer's forward) and `g W`
//! (the gradient with respect to its input, all a frozen weight needs).
//!
//! One input row (decoding a token) is bound by reading the weight from memory, so it runs on
//! the stored bytes directly: each thread takes a band of rows and decodes its blocks in
//! registers as it goes (`kernels::dot_rows`); a 4-bit weight is read in an eighth of the
//! time of an f32 one. A few rows (sequences decoded together) run on the stored bytes too,
//! each group of weight rows read once for all of them (and each block of the 32-weight types
//! decoded once per four or eight of them), and each output row equal bit for bit to the
//! one-row product of its input. More rows go through decoded tiles and `gemm` (`panel.rs`).
//! On AVX-512 VNNI, one and a few rows of Q4_0, Q4_1 and Q8_0 run on integer dot products
//! instead (`int_rows`: repacked weights, inputs rounded to 16 bits), with the same promise.

#[cfg(target_arch = "x86_64")]
use super::int_inputs::IntInputs;
use super::interleave::Interleaved;
use super::isa::Isa;
use super::kernels;
use super::matrix::QuantMatrix;
use super::panel;
#[cfg(target_arch = "x86_64")]
use super::repack::{Repacked, ROWS};
use super::simd::sums32;
use super::split::for_each_share;
#[cfg(target_arch = "x86_64")]
use super::vnni;
use candle_core::Result;

/// Bands of fewer rows than this are not split further across threads.
const MIN_BAND: usize = 64;

/// Inputs of at most this many rows run on the stored bytes (`few_rows`); more are decoded
/// to f32 tiles once and go through `gemm`.
const FEW_ROWS: usize = 32;

/// Weight rows dotted with every input row while they are in cache (a multiple of 4, so
/// the four-row kernel sees the rows the one-row product gives it).
const SUB_BAND: usize = 32;

impl QuantMatrix {
    /// `x W^T`: `x` holds `m` rows of `col_count()` values, row-major; the result `m` rows
    /// of `row_count()` values. The weights are decoded on the fly; `x` stays f32.
    pub fn matmul_t(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        self.matmul_t_on(Isa::best(), x, m)
    }

    /// `matmul_t` on the kernels built for `isa` (to compare the builds); errors when this
    /// CPU lacks `isa`.
    pub fn matmul_t_on(&self, isa: Isa, x: &[f32], m: usize) -> Result<Vec<f32>> {
        self.check(isa, "matmul_t", x.len(), (m, self.col_count()))?;
        let n = self.row_count();
        if m * n == 0 {
            return Ok(vec![0.0; m * n]);
        }
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512Vnni && m <= FEW_ROWS {
            if let Some(p) = self.repacked() {
                return Ok(int_rows(p, x, m, n));
            }
        }
        if m == 1 {
            return Ok(self.one_row(isa, x));
        }
        if m <= FEW_ROWS {
            return Ok(self.few_rows(isa, x, m));
        }
        Ok(panel::matmul_t(isa, self, x, m))
    }

    /// `g W`: `g` holds `m` rows of `row_count()` values (a gradient of the output), the
    /// result `m` rows of `col_count()` values (the gradient of the input).
    pub fn matmul(&self, g: &[f32], m: usize) -> Result<Vec<f32>> {
        self.matmul_on(Isa::best(), g, m)
    }

    /// `matmul` on the kernels built for `isa`; errors when this CPU lacks `isa`.
    pub fn matmul_on(&self, isa: Isa, g: &[f32], m: usize) -> Result<Vec<f32>> {
        self.check(isa, "matmul", g.len(), (m, self.row_count()))?;
        if m * self.col_count() == 0 {
            return Ok(vec![0.0; m * self.col_count()]);
        }
        Ok(panel::matmul(isa, self, g, m))
    }

    /// Errors unless the CPU has `isa` and the input holds `m` rows of `cols` values.
    fn check(&self, isa: Isa, op: &str, len: usize, (m, cols): (usize, usize)) -> Result<()> {
        if !isa.supported() {
            candle_core::bail!("quantised {op}: this CPU has no {}", isa.name())
        }
        if len != m * cols {
            candle_core::bail!(
                "quantised {op}: {len} input values are not {m} rows of {cols} for a \
                 ({}, {}) weight",
                self.row_count(),
                self.col_count()
            )
        }
        Ok(())
    }

    /// `x W^T` for one input row, the weight's rows split in bands across the threads.
    fn one_row(&self, isa: Isa, x: &[f32]) -> Vec<f32> {
        let (ty, rb) = (self.quant_type(), self.row_bytes());
        let sums = if ty.is_float() { Vec::new() } else { sums32(x) };
        let n = self.row_count();
        let threads = rayon::current_num_threads();
        // A few bands per thread, so a thread slowed by other work is caught up by the rest.
        let band = n.div_ceil(4 * threads).max(MIN_BAND);
        let mut y = vec![0f32; n];
        let mut bands: Vec<(usize, &mut [f32])> = y.chunks_mut(band).enumerate().collect();
        for_each_share(&mut bands, |(i, yb)| {
            let r0 = *i * band;
            let rows = &self.bytes()[r0 * rb..(r0 + yb.len()) * rb];
            kernels::dot_rows(isa, ty, (rows, rb), x, &sums, yb);
        });
        y
    }

    /// `x W^T` for a few input rows: the bands of `one_row`, each cut in groups of
    /// `SUB_BAND` weight rows that are dotted with every input row while in cache
    /// (`kernels::dot_rows_inputs`: the 32-weight block types decode each block once per four
    /// or eight inputs). The kernel sees each input row with the rows `one_row` gives it and
    /// takes the same steps, so every output row is that input's one-row product exactly (a
    /// sequence decoded in a batch gets the numbers it gets alone).
    fn few_rows(&self, isa: Isa, x: &[f32], m: usize) -> Vec<f32> {
        let (ty, rb) = (self.quant_type(), self.row_bytes());
        let n = self.row_count();
        // Each row's group sums, one row after another (a row is whole groups of 32).
        let sums = if ty.is_float() { Vec::new() } else { sums32(x) };
        let xi = kernels::inputs_per_group(ty).map(|per| Interleaved::new(x, m, per));
        let xi = xi.as_ref().map_or(&[][..], Interleaved::values);
        let threads = rayon::current_num_threads();
        let band = n.div_ceil(4 * threads).max(MIN_BAND);
        // Band i's products, (m, rows of the band).
        let run = |i: usize| -> Vec<f32> {
            let r0 = i * band;
            let len = band.min(n - r0);
            let mut out = vec![0f32; m * len];
            let mut group = vec![0f32; m * SUB_BAND];
            for s0 in (0..len).step_by(SUB_BAND) {
                let s = SUB_BAND.min(len - s0);
                let rows = &self.bytes()[(r0 + s0) * rb..(r0 + s0 + s) * rb];
                let ys = &mut group[..m * s];
                kernels::dot_rows_inputs(isa, ty, (rows, rb), (x, xi), &sums, ys);
                for (j, yj) in ys.chunks(s).enumerate() {
                    out[j * len + s0..j * len + s0 + s].copy_from_slice(yj);
                }
            }
            out
        };
        let mut outs: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(band)).map(|i| (i, vec![])).collect();
        for_each_share(&mut outs, |(i, out)| *out = run(*i));
        let mut y = vec![0f32; m * n];
        for (i, out) in outs.iter() {
            let i = *i;
            let (r0, len) = (i * band, out.len() / m);
            for (j, o) in out.chunks(len).enumerate() {
                y[j * n + r0..j * n + r0 + len].copy_from_slice(o);
            }
        }
        y
    }
}

/// `x W^T` for up to `FEW_ROWS` input rows on the integer kernels (`vnni.rs`): the inputs
/// rounded to 16 bits once, the groups of 16 weight rows split in bands across the threads,
/// and each output row the one-row product of its input (every input takes the same steps).
#[cfg(target_arch = "x86_64")]
fn int_rows(p: &Repacked, x: &[f32], m: usize, n: usize) -> Vec<f32> {
    // SAFETY: `Isa::Avx512Vnni` (AVX-512 F, BW and VNNI) is chosen only where the CPU has it
    // (checked by `matmul_t_on`).
    let xi = unsafe { IntInputs::new(x, m) };
    let threads = rayon::current_num_threads();
    let band = p.groups.div_ceil(4 * threads).max(MIN_BAND / ROWS);
    let mut y = vec![0f32; m * n];
    let out = vnni::Out {
        ptr: y.as_mut_ptr(),
        n,
    };
    let mut bands: Vec<usize> = (0..p.groups.div_ceil(band)).collect();
    for_each_share(&mut bands, |i| {
        let groups = *i * band..((*i + 1) * band).min(p.groups);
        // SAFETY: `Isa::Avx512Vnni` is chosen only where the CPU supports it (checked by
        // `matmul_t_on`); each band writes its own columns of `y`, which outlives the shares.
        unsafe { vnni::dot_groups(p, groups, &xi, out) };
    });
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::format::QuantType;
    use crate::quant::testing::{assert_close, candle_dequantized, normal, weights};
    use candle_core::quantized::GgmlDType;
    use candle_core::{Device, Tensor};

    /// `x W^T` and `g W` through candle: its decoding, then its f32 matmul.
    fn reference(w: &QuantMatrix, x: &[f32], g: &[f32], m: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let wf = candle_dequantized(w)?;
        let (n, k) = (w.row_count(), w.col_count());
        let x = Tensor::from_slice(x, (m, k), &Device::Cpu)?;
        let g = Tensor::from_slice(g, (m, n), &Device::Cpu)?;
        let y = x.matmul(&wf.t()?)?.flatten_all()?.to_vec1()?;
        let dx = g.matmul(&wf)?.flatten_all()?.to_vec1()?;
        Ok((y, dx))
    }

    /// Both products of a (301, 512) weight of type `dtype` with 1, 3 and 17 input rows, on
    /// 3 threads (301 rows split unevenly): within 1e-4 of candle's decode-then-matmul on
    /// every instruction set this CPU has; the AVX builds on f32 inputs agree exactly, and
    /// with the portable build (no fused multiply-add) to 1e-5.
    fn products_match_candle(dtype: GgmlDType, seed: u64) -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let (n, k) = (301, 512);
        let w = QuantMatrix::quantize(&weights(n, k, seed)?, dtype)?;
        for m in [1, 3, 17] {
            let (x, g) = (normal(m * k, seed + 1), normal(m * n, seed + 2));
            let (want_y, want_dx) = reference(&w, &x, &g, m)?;
            let mut first: Option<(Isa, Vec<f32>, Vec<f32>)> = None;
            for isa in Isa::available() {
                let y = pool.install(|| w.matmul_t_on(isa, &x, m))?;
                let dx = pool.install(|| w.matmul_on(isa, &g, m))?;
                let what = format!("{dtype:?} m={m} {}", isa.name());
                assert_close(&y, &want_y, 1e-4, &format!("{what} x W^T"));
                assert_close(&dx, &want_dx, 1e-4, &format!("{what} g W"));
                if isa == Isa::Avx512Vnni && w.repacked().is_some() {
                    // Inputs rounded to 16 bits: close to candle's, not equal to f32 builds'.
                    continue;
                }
                match &first {
                    None => first = Some((isa, y, dx)),
                    Some((_, y0, dx0)) if isa != Isa::Portable => {
                        assert_eq!((&y, &dx), (y0, dx0), "{what} vs the first build");
                    }
                    Some((_, y0, dx0)) => {
                        assert_close(&y, y0, 1e-5, &format!("{what} x W^T vs FMA"));
                        assert_eq!(&dx, dx0, "{what} g W: the same decoding and gemm");
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn q4_0_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::Q4_0, 10)
    }

    #[test]
    fn q4_1_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::Q4_1, 20)
    }

    #[test]
    fn q8_0_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::Q8_0, 30)
    }

    #[test]
    fn q4_k_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::Q4K, 40)
    }

    #[test]
    fn q5_k_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::Q5K, 50)
    }

    #[test]
    fn q6_k_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::Q6K, 60)
    }

    #[test]
    fn f16_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::F16, 70)
    }

    #[test]
    fn bf16_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::BF16, 80)
    }

    #[test]
    fn f32_products_match_candle() -> Result<()> {
        products_match_candle(GgmlDType::F32, 90)
    }

    /// Float rows of any length (a 16-lane body and a tail), and a weight tall enough that
    /// the input gradient sums several row tiles.
    #[test]
    fn odd_float_rows_and_many_row_tiles() -> Result<()> {
        let w = QuantMatrix::quantize(&weights(7, 37, 1)?, GgmlDType::F16)?;
        let x = normal(37, 2);
        let (want, _) = reference(&w, &x, &normal(7, 3), 1)?;
        assert_close(&w.matmul_t(&x, 1)?, &want, 1e-4, "f16 k=37");
        let (n, k, m) = (1100, 64, 2);
        let w = QuantMatrix::quantize(&weights(n, k, 4)?, GgmlDType::Q8_0)?;
        let (x, g) = (normal(m * k, 5), normal(m * n, 6));
        let (want_y, want_dx) = reference(&w, &x, &g, m)?;
        assert_close(&w.matmul_t(&x, m)?, &want_y, 1e-4, "q8_0 tall x W^T");
        assert_close(&w.matmul(&g, m)?, &want_dx, 1e-4, "q8_0 tall g W");
        Ok(())
    }

    /// Each row of a few-row product is the one-row product of its input, bit for bit, for
    /// 2 to `FEW_ROWS` rows (whole groups of four and eight inputs and not), on every
    /// instruction set this CPU has, on one thread and on three (a weight of 301 rows: uneven
    /// bands and a tail of one row).
    #[test]
    fn few_rows_equal_their_one_row_products() -> Result<()> {
        let (n, k) = (301, 512);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for dtype in QuantType::ALL {
                let w = QuantMatrix::quantize(&weights(n, k, 7)?, dtype.ggml())?;
                for (m, isa) in (2..=FEW_ROWS)
                    .flat_map(|m| Isa::available().into_iter().map(move |isa| (m, isa)))
                {
                    let x = normal(m * k, 8 + m as u64);
                    let y = pool.install(|| w.matmul_t_on(isa, &x, m))?;
                    for (j, xj) in x.chunks(k).enumerate() {
                        let alone = pool.install(|| w.matmul_t_on(isa, xj, 1))?;
                        let what = format!("{dtype:?} m={m} {} row {j}", isa.name());
                        assert_eq!(&y[j * n..(j + 1) * n], &alone[..], "{what}");
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn wrong_input_lengths_are_errors() -> Result<()> {
        let w = QuantMatrix::quantize(&weights(4, 32, 1)?, GgmlDType::Q4_0)?;
        assert!(w.matmul_t(&[0.0; 31], 1).is_err());
        assert!(w.matmul(&[0.0; 5], 1).is_err());
        assert_eq!(w.matmul_t(&[], 0)?, Vec::<f32>::new());
        Ok(())
    }
}
