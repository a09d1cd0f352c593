//! Seeded initialisation of new weights (heads, LoRA, adapters, prefixes).

use candle_core::{Device, Result, Shape, Tensor};
use tuna_core::Rng;

/// Normal(0, std) values of `shape`.
pub fn normal<S: Into<Shape>>(shape: S, std: f64, rng: &mut Rng, dev: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| (rng.normal() * std) as f32)
        .collect();
    Tensor::from_vec(v, shape, dev)
}

/// Uniform(-bound, bound) values of `shape`.
pub fn uniform<S: Into<Shape>>(
    shape: S,
    bound: f64,
    rng: &mut Rng,
    dev: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let v: Vec<f32> = (0..shape.elem_count())
        .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Tensor::from_vec(v, shape, dev)
}

/// PyTorch's default `nn.Linear` weight and bias: Uniform(+-1/sqrt(in)) (Kaiming uniform, a=sqrt 5).
pub fn torch_linear(
    in_dim: usize,
    out_dim: usize,
    rng: &mut Rng,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let bound = 1.0 / (in_dim as f64).sqrt();
    Ok((
        uniform((out_dim, in_dim), bound, rng, dev)?,
        uniform(out_dim, bound, rng, dev)?,
    ))
}
