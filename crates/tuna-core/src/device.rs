//! Device choice: CPU by default, a CUDA GPU when built with `cuda` and asked for.
//!
//! Asking for a GPU that cannot be used stops with one message that says why: this build has
//! no CUDA support, no usable NVIDIA driver was found, the driver sees no GPU, or there are
//! fewer GPUs than the ordinal asked for. The driver is asked before any model is loaded.

use crate::{Error, Result};
use candle_core::Device;

/// Why a CUDA device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaUnavailable {
    /// This binary was built without the `cuda` feature.
    NotBuilt,
    /// The NVIDIA driver is missing or unusable; `code` is the driver's error.
    NoDriver { code: String },
    /// The driver runs but sees no GPU.
    NoDevice { code: String },
    /// `cuda:N` asked for with only `count` GPUs visible.
    NoSuchOrdinal { asked: usize, count: usize },
    /// Any other failure of the driver while starting.
    Failed { code: String },
}

impl CudaUnavailable {
    /// Sorts a failure of the driver's initialisation by its error name (`CUDA_ERROR_*`).
    pub fn from_driver_code(code: &str) -> Self {
        let code = code.to_string();
        match code.as_str() {
            "CUDA_ERROR_STUB_LIBRARY"
            | "CUDA_ERROR_INSUFFICIENT_DRIVER"
            | "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"
            | "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"
            | "CUDA_ERROR_NOT_INITIALIZED" => Self::NoDriver { code },
            "CUDA_ERROR_NO_DEVICE"
            | "CUDA_ERROR_DEVICE_UNAVAILABLE"
            | "CUDA_ERROR_INVALID_DEVICE" => Self::NoDevice { code },
            _ => Self::Failed { code },
        }
    }

    /// The message for `--device name`.
    pub fn message(&self, name: &str) -> String {
        let why = match self {
            Self::NotBuilt => "this tuna was built without CUDA support (rebuild with \
                `cargo build --release --features cuda`, see the README)"
                .to_string(),
            Self::NoDriver { code } => {
                format!("no usable NVIDIA driver was found ({code}); install the driver")
            }
            Self::NoDevice { code } => format!(
                "the NVIDIA driver sees no GPU ({code}); check the GPU and CUDA_VISIBLE_DEVICES"
            ),
            Self::NoSuchOrdinal { asked, count } => format!(
                "only {count} GPU{} visible, so the highest is cuda:{}; cuda:{asked} does not exist",
                if *count == 1 { " is" } else { "s are" },
                count.saturating_sub(1)
            ),
            Self::Failed { code } => format!("the CUDA driver failed to start ({code})"),
        };
        format!("device `{name}` asked for, but {why}; or run with --device cpu")
    }
}

/// Parses a device name: `cpu`, `cuda` or `cuda:N`.
pub fn pick_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| Error::Invalid(format!("bad device `{s}`: use cuda:N")))?,
                None => 0,
            };
            probe_cuda(ordinal).map_err(|why| Error::Invalid(why.message(s)))?;
            Ok(Device::new_cuda(ordinal)?)
        }
        other => Err(Error::Invalid(format!(
            "unknown device `{other}`: use cpu, cuda or cuda:N"
        ))),
    }
}

/// Checks that GPU `ordinal` can be used, before candle opens it.
#[cfg(not(feature = "cuda"))]
fn probe_cuda(_ordinal: usize) -> std::result::Result<(), CudaUnavailable> {
    Err(CudaUnavailable::NotBuilt)
}

/// Checks that GPU `ordinal` can be used, before candle opens it.
#[cfg(feature = "cuda")]
fn probe_cuda(ordinal: usize) -> std::result::Result<(), CudaUnavailable> {
    use candle_core::cuda_backend::cudarc::driver::result;
    let name = |e: result::DriverError| format!("{:?}", e.0);
    result::init().map_err(|e| CudaUnavailable::from_driver_code(&name(e)))?;
    let count =
        result::device::get_count().map_err(|e| CudaUnavailable::from_driver_code(&name(e)))?;
    let count = usize::try_from(count).unwrap_or(0);
    if count == 0 {
        return Err(CudaUnavailable::NoDevice {
            code: "no devices".into(),
        });
    }
    if ordinal >= count {
        return Err(CudaUnavailable::NoSuchOrdinal {
            asked: ordinal,
            count,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_errors() {
        assert!(pick_device("cpu").unwrap().is_cpu());
        assert!(pick_device("tpu").is_err());
        assert!(pick_device("cuda:x").is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_so() {
        for name in ["cuda", "cuda:1"] {
            let e = pick_device(name).unwrap_err().to_string();
            assert!(e.contains(&format!("device `{name}` asked for")), "{e}");
            assert!(e.contains("built without CUDA support"), "{e}");
            assert!(
                e.contains("--features cuda") && e.contains("--device cpu"),
                "{e}"
            );
        }
    }

    #[test]
    fn driver_errors_are_sorted_by_cause() {
        let k = CudaUnavailable::from_driver_code;
        assert!(matches!(
            k("CUDA_ERROR_STUB_LIBRARY"),
            CudaUnavailable::NoDriver { .. }
        ));
        assert!(matches!(
            k("CUDA_ERROR_INSUFFICIENT_DRIVER"),
            CudaUnavailable::NoDriver { .. }
        ));
        assert!(matches!(
            k("CUDA_ERROR_NO_DEVICE"),
            CudaUnavailable::NoDevice { .. }
        ));
        assert!(matches!(
            k("CUDA_ERROR_UNKNOWN"),
            CudaUnavailable::Failed { .. }
        ));
    }

    #[test]
    fn messages_name_the_device_the_cause_and_the_way_out() {
        let msg = |w: CudaUnavailable| w.message("cuda:1");
        let no_driver = msg(CudaUnavailable::from_driver_code("CUDA_ERROR_STUB_LIBRARY"));
        assert_eq!(
            no_driver,
            "device `cuda:1` asked for, but no usable NVIDIA driver was found \
             (CUDA_ERROR_STUB_LIBRARY); install the driver; or run with --device cpu"
        );
        let no_gpu = msg(CudaUnavailable::from_driver_code("CUDA_ERROR_NO_DEVICE"));
        assert!(no_gpu.contains("the NVIDIA driver sees no GPU (CUDA_ERROR_NO_DEVICE)"));
        let ordinal = msg(CudaUnavailable::NoSuchOrdinal { asked: 1, count: 1 });
        assert!(ordinal.contains("only 1 GPU is visible, so the highest is cuda:0"));
        assert!(ordinal.contains("cuda:1 does not exist"));
        let failed = msg(CudaUnavailable::from_driver_code("CUDA_ERROR_UNKNOWN"));
        assert!(failed.contains("the CUDA driver failed to start (CUDA_ERROR_UNKNOWN)"));
        assert!(msg(CudaUnavailable::NotBuilt).ends_with("; or run with --device cpu"));
    }
}
