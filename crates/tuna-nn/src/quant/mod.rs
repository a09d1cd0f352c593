//! Frozen weights kept in their stored (quantised) type, with products that decode them on
//! the fly: no f32 copy of the weight is ever made.
//!
//! # API (for the loader and the model code)
//!
//! ```text
//! // a GGUF tensor as it is stored: its bytes, GGML type and (rows = out, cols = in) shape
//! let w = QuantMatrix::from_bytes(bytes: Vec<u8>, dtype: GgmlDType, (rows, cols))?;
//! let w = QuantMatrix::from_qtensor(&qtensor)?;          // candle's GGUF reader's QTensor
//! let w = QuantMatrix::quantize(&f32_tensor, GgmlDType::Q4_0)?;   // or F16, BF16, Q6K, ...
//! let w = w.unpermute_heads(n_head)?;     // llama.cpp's Q/K row order, as gguf::unpermute
//! let w = w.permute_rows(&perm)?;         // any row order: new row i = old row perm[i]
//! w.dequantize()? -> Tensor;              // (rows, cols) f32, decoded as GGML decodes
//! w.gather_rows(&ids)? -> Vec<f32>;       // rows ids decoded: (ids.len(), cols), a table lookup
//! w.row_count(); w.col_count(); w.nbytes(); w.dtype();
//! w.matmul_t(x: &[f32], m)? -> Vec<f32>;  // x (m, cols) W^T: (m, rows)
//! w.matmul(g: &[f32], m)? -> Vec<f32>;    // g (m, rows) W: (m, cols), the input gradient
//! // as a layer: x (..., cols) f32 on the CPU -> (..., rows), gradient for x only
//! let layer = QLinear::new(Arc::new(w), bias: Option<Vec<f32>>)?;
//! let y = candle_core::Module::forward(&layer, &x)?;
//! ```
//!
//! Stored types: Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, F16, BF16 and F32 (`QuantType`); rows
//! must be whole blocks (32 values, 256 for the K types). The products agree with "decode,
//! then f32 matmul" to 1e-4 of the result's scale: the inputs stay f32, except in the one- and
//! few-row products of Q4_0, Q4_1 and Q8_0 on AVX-512 VNNI, which round them to 16 bits per
//! block of 32 for integer dot products (llama.cpp rounds them to 8 bits). The kernels are
//! chosen at run time for the CPU (`Isa`: AVX-512 VNNI, AVX-512, AVX2 + FMA, or portable
//! Rust; `TUNA_ISA` names another); `matmul_t_on` and `matmul_on` run a given one, for tests
//! and benchmarks.
//! Threads: rayon's current pool (`ThreadPool::install` to choose).
//!
//! One concept per file: `isa` (which instruction set), `simd` and `simd_x86` (the
//! 16-lane vector the kernels are written in), `format` (the stored types), `legacy`, `kquant` and `float` (each type's dot
//! product and decoding), `rows4` (four rows of a 32-weight block type at once), `interleave` (their inputs block by block), `kernels` (their builds per instruction set), `matrix`
//! (`QuantMatrix`), `gather` (rows looked up and decoded), `matmul` (the products, one-row case), `panel` (many rows, on `gemm`),
//! `op` (`QLinear`), `split` and `team` (a product's rows across threads); `repack`
//! (the 32-weight types 16 rows side by side), `int_inputs` (inputs rounded to 16 bits) and
//! `vnni` (their integer dot products).

mod float;
mod format;
mod gather;
#[cfg(target_arch = "x86_64")]
mod int_inputs;
mod interleave;
mod isa;
mod kernels;
mod kquant;
mod legacy;
mod matmul;
mod matrix;
mod op;
mod panel;
mod repack;
mod rows4;
mod simd;
#[cfg(target_arch = "x86_64")]
mod simd_x86;
pub(crate) mod split;
mod team;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(target_arch = "x86_64")]
mod vnni;

pub use format::QuantType;
pub use isa::Isa;
pub use matrix::QuantMatrix;
pub use op::QLinear;
