//! A note, logged once per op, that one of tuna's own kernels did not run.
//!
//! tuna's fused kernels (training softmax and norms, GELU, the training linear op, attention
//! with a backward, the row-split one-row product) are written for f32 on the CPU. On other
//! devices or dtypes each op runs the same formula in candle's tensor ops instead, which have
//! CUDA kernels and gradients: correct, but not the fused path. That choice is logged once per
//! op and process (`tracing` at warn level), so a run on a GPU says which ops took the
//! generic path rather than switching silently.

use candle_core::Tensor;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// The ops already reported in this process.
fn reported() -> &'static Mutex<HashSet<&'static str>> {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    SEEN.get_or_init(|| Mutex::new(HashSet::new()))
}

/// True the first time `op` is named in this process.
fn first_time(op: &'static str) -> bool {
    reported()
        .lock()
        .map(|mut seen| seen.insert(op))
        .unwrap_or(false)
}

/// Logs once that `op` runs as `instead` on `x`'s device and dtype.
pub fn note(op: &'static str, x: &Tensor, instead: &str) {
    if first_time(op) {
        tracing::warn!(
            "{op}: no fused kernel for {:?} {:?}; using {instead} (logged once)",
            x.device().location(),
            x.dtype()
        );
    }
}

/// True when `x` is on a device or of a dtype that tuna's fused kernels do not cover.
pub fn off_kernel(x: &Tensor) -> bool {
    !x.device().is_cpu() || x.dtype() != candle_core::DType::F32
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn each_op_is_reported_once() {
        assert!(first_time("test-op-a"));
        assert!(!first_time("test-op-a"));
        assert!(first_time("test-op-b"));
    }

    #[test]
    fn only_f32_on_the_cpu_is_covered() -> candle_core::Result<()> {
        let x = Tensor::zeros(2, DType::F32, &Device::Cpu)?;
        assert!(!off_kernel(&x));
        assert!(off_kernel(&x.to_dtype(DType::BF16)?));
        note("test-op-c", &x, "tensor ops");
        assert!(!first_time("test-op-c"));
        Ok(())
    }
}
