//! The backward pass of the patched candle-core (`patches/candle-core-backprop.patch`) keeps
//! the first gradient that reaches a tensor instead of adding it to a zero-filled buffer. These
//! tests pin what that must not change: sums over several paths, gradients that arrive as
//! strided views, and gradients that arrive through ops whose sums broadcast or subtract.

use candle_core::{Device, Result, Tensor, Var, D};

fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// `x` reaches the loss by three paths (a product, a transpose, a subtraction): its gradient is
/// the sum of the three, in the order the edges were added.
#[test]
fn gradients_of_several_paths_are_summed() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_vec(vec![1f32, -2., 3., 0.5, 4., -1.], (2, 3), &dev)?;
    let w = Tensor::from_vec(vec![2f32, 0., -1., 1., 3., 0.5], (3, 2), &dev)?;
    let a = x.matmul(&w)?; // (2, 2)
    let b = x.t()?.sum_keepdim(1)?; // (3, 1): the row sums of x^T
    let c = (x.sqr()? - x.as_tensor())?; // x^2 - x
    let loss = ((a.sum_all()? + b.sum_all()?)? + c.sum_all()?)?;
    let g = loss.backward()?;
    let gx = values(g.get(&x).expect("x has a gradient"))?;
    // d/dx: row sums of w (from a), 1 (from b), 2x - 1 (from c).
    let w_rows = values(&w.sum(D::Minus1)?)?;
    let xs = values(x.as_tensor())?;
    for (i, (&got, &xi)) in gx.iter().zip(&xs).enumerate() {
        let want = w_rows[i % 3] + 1.0 + (2.0 * xi - 1.0);
        assert!((got - want).abs() < 1e-6, "{i}: {got} vs {want}");
    }
    Ok(())
}

/// A first gradient that is a strided view (the transpose's backward) is stored contiguous and
/// reads back as the same values.
#[test]
fn a_strided_first_gradient_is_stored_contiguous() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_vec((0..6).map(|i| i as f32).collect(), (2, 3), &dev)?;
    let scale = Tensor::from_vec((1..=6).map(|i| i as f32).collect(), (3, 2), &dev)?;
    let loss = (x.t()? * &scale)?.sum_all()?;
    let g = loss.backward()?;
    let gx = g.get(&x).expect("x has a gradient");
    assert!(gx.is_contiguous());
    assert_eq!(values(gx)?, values(&scale.t()?)?);
    Ok(())
}

/// A tensor used once, through a broadcast, and once directly: the broadcast's sum path and the
/// direct path add up.
#[test]
fn broadcast_and_direct_paths_add_up() -> Result<()> {
    let dev = Device::Cpu;
    let b = Var::from_vec(vec![1f32, 2., 3.], 3, &dev)?;
    let rows = b.broadcast_as((4, 3))?;
    let loss = (rows.sum_all()? + (b.as_tensor() * 2.0)?.sum_all()?)?;
    let g = loss.backward()?;
    assert_eq!(values(g.get(&b).expect("b has a gradient"))?, vec![6.0; 3]);
    Ok(())
}
