//! Activation functions named as in Hugging Face configs (`hidden_act`).

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// A feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU with the error function (`gelu` in transformers).
    #[serde(alias = "gelu_python")]
    Gelu,
    /// GELU, tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    /// Rectified linear unit.
    Relu,
    /// SiLU / swish (Llama's gate).
    #[serde(alias = "swish")]
    Silu,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Gelu => crate::gelu::gelu_erf(x),
            Activation::GeluNew => x.gelu(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hf_names() {
        for (name, want) in [
            ("\"gelu\"", Activation::Gelu),
            ("\"gelu_new\"", Activation::GeluNew),
            ("\"gelu_pytorch_tanh\"", Activation::GeluNew),
            ("\"silu\"", Activation::Silu),
            ("\"relu\"", Activation::Relu),
        ] {
            assert_eq!(serde_json::from_str::<Activation>(name).unwrap(), want);
        }
    }

    #[test]
    fn gelu_values() -> Result<()> {
        // torch.nn.functional.gelu(torch.tensor([-1., 0., 1.5])) = [-0.158655, 0., 1.399789]
        let x = Tensor::new(&[-1f32, 0., 1.5], &candle_core::Device::Cpu)?;
        let y: Vec<f32> = Activation::Gelu.forward(&x)?.to_vec1()?;
        for (a, b) in y.iter().zip([-0.158655f32, 0., 1.399789]) {
            assert!((a - b).abs() < 1e-5, "{y:?}");
        }
        Ok(())
    }
}
