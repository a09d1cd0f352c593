//! Device choice: CPU by default, the first CUDA GPU when built with `cuda` and asked for.

use crate::{Error, Result};
use candle_core::Device;

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
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::Invalid(format!(
                    "device `{s}` asked for, but this build has no CUDA support (build with --features cuda)"
                )));
            }
            Ok(Device::new_cuda(ordinal)?)
        }
        other => Err(Error::Invalid(format!(
            "unknown device `{other}`: use cpu, cuda or cuda:N"
        ))),
    }
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
}
