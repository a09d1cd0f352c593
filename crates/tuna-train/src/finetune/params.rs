//! The trainable tensors of a method: which ones (by key name), their variables, and putting
//! them into the model either as graph-tracked variables (training) or as plain tensors
//! sharing the same storage (evaluation, so inference kernels run).

use super::head::is_head_tensor;
use super::task_model::TaskModel;
use candle_core::{Result, Tensor, Var};

/// One trainable tensor.
pub struct Param {
    pub name: String,
    pub var: Var,
    /// Whether weight decay applies (not to biases, norms, embeddings of prompts/prefixes).
    pub decay: bool,
}

/// The trainable tensors, in a fixed order (the model's visiting order).
pub struct Params {
    pub list: Vec<Param>,
}

/// Key names the method trains (and the head), in visiting order.
pub fn trainable_names(tm: &mut TaskModel) -> Result<Vec<String>> {
    let trains = tm.method.selector(&tm.model.network);
    // Base weights the method trains are decoded from their stored type first (a quantised
    // weight is frozen by construction and not visited).
    tm.model.network.dequantise_where(&*trains)?;
    let head = tm.head.name.clone();
    let mut names = vec![];
    tm.visit(&mut |name, _| {
        if is_head_tensor(&head, name) || trains(name) {
            names.push(name.to_string());
        }
        Ok(())
    })?;
    Ok(names)
}

/// No weight decay for biases, norms and prompt/prefix embeddings.
fn decays(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !(n.ends_with(".bias")
        || n.contains("norm")
        || n.contains("embedding")
        || n.starts_with("prompt_"))
}

impl Params {
    /// Makes the named tensors trainable variables and puts them into the model (tracked).
    pub fn create(tm: &mut TaskModel, names: &[String]) -> Result<Self> {
        let mut list = Vec::with_capacity(names.len());
        let method = tm.method.clone();
        tm.visit(&mut |name, t| {
            if names.iter().any(|n| n == name) {
                let var = Var::from_tensor(t)?;
                *t = var.as_tensor().clone();
                list.push(Param {
                    name: name.to_string(),
                    var,
                    decay: decays(name) && !method.no_decay(name),
                });
            }
            Ok(())
        })?;
        Ok(Self { list })
    }

    /// Puts the variables into the model: tracked (gradients flow) or as plain tensors sharing
    /// their storage (evaluation runs the fused inference kernels).
    pub fn install(&self, tm: &mut TaskModel, tracked: bool) -> Result<()> {
        tm.visit(&mut |name, t| {
            if let Some(p) = self.list.iter().find(|p| p.name == name) {
                *t = if tracked {
                    p.var.as_tensor().clone()
                } else {
                    p.var.as_tensor().detach()
                };
            }
            Ok(())
        })
    }

    /// Total number of trainable values.
    pub fn count(&self) -> usize {
        self.list.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Copies of the current values (for keeping the best epoch).
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.list.iter().map(|p| p.var.as_tensor().copy()).collect()
    }

    /// Sets every variable from `values` (same order).
    pub fn restore(&self, values: &[Tensor]) -> Result<()> {
        for (p, v) in self.list.iter().zip(values) {
            p.var.set(v)?;
        }
        Ok(())
    }

    /// `(name, tensor)` pairs of the current values.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        self.list
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().detach()))
            .collect()
    }
}
