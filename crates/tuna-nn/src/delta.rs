//! The weight-delta seam of [`crate::Linear`]: an adaptation method changes what a frozen
//! linear layer computes without the model code knowing which method it is (LoRA adds a
//! low-rank product, IA3 scales the input or the output, DoRA re-normalises the rows).

use crate::low_rank_op::LowRank;
use crate::visit::Visitor;
use crate::weight::Weight;
use candle_core::{Result, Tensor};

/// A change to the output of one linear layer `y = x W^T + b`, whose weight stays frozen.
pub trait WeightDelta: std::fmt::Debug + Send + Sync {
    /// The input the frozen product runs on, when the method changes it (IA3 on a
    /// feed-forward layer scales it); `None` keeps `x`. `x`: 2-D rows (N, in).
    fn input(&self, _x: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// The adapted output from the rows `x` (N, in) and `base`, the frozen product
    /// (N, out) of [`WeightDelta::input`] (or `x`) with `weight` (out, in), bias included.
    fn output(
        &self,
        x: &Tensor,
        base: Tensor,
        weight: &Weight,
        bias: Option<&Tensor>,
    ) -> Result<Tensor>;

    /// The change as a low-rank update of the output (LoRA's form), when it is one: the layer
    /// then adds it inside its own product ([`crate::low_rank_op`]) instead of calling
    /// [`WeightDelta::output`].
    fn low_rank(&self) -> Option<LowRank> {
        None
    }

    /// Visits the method's tensors under the layer's module name, by their PEFT key names.
    fn visit(&mut self, module: &str, f: &mut Visitor) -> Result<()>;

    /// The weight and bias with the change folded in, for a plain checkpoint.
    fn merge(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)>;

    /// A copy behind a new box (layers are cloned when products are fused).
    fn clone_box(&self) -> Box<dyn WeightDelta>;
}

impl Clone for Box<dyn WeightDelta> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}
