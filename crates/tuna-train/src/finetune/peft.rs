//! A task model's adapter in PEFT's layout (see `tuna_adapt::peft`): writing the method's
//! tensors with its config, and loading saved tensors back into a model by key name.

use super::task_model::TaskModel;
use crate::{Error, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;
pub use tuna_adapt::peft::{read_config, read_tensors, save_tensors, NetShape, CONFIG, WEIGHTS};

/// Writes the method's adapter into `dir` in PEFT's layout; the input part must already be in
/// its saved form ([`TaskModel::to_saved_form`]).
pub fn save_adapter(tm: &mut TaskModel, dir: &Path, base_model: &Path) -> Result<()> {
    let trains = tm.method.selector(&tm.model.network);
    let head = tm.head.name.clone();
    let mut tensors: Vec<(String, Tensor)> = vec![];
    tm.visit(&mut |name, t| {
        if trains(name) && !super::head::is_head_tensor(&head, name) {
            tensors.push((name.to_string(), t.detach()));
        }
        Ok(())
    })?;
    let names: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    let shape = NetShape::of(&tm.model);
    let Some(cfg) = tm.method.peft_config(&names, &shape) else {
        return Err(Error::Invalid(format!(
            "method {} has no adapter file",
            tm.method.label()
        )));
    };
    tuna_adapt::peft::write_adapter(dir, cfg, &tensors, &shape, base_model)?;
    Ok(())
}

/// Replaces the model's tensors by the named ones (shapes must match); every name must be used.
pub fn load_into(
    tm: &mut TaskModel,
    mut tensors: HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    // Base weights in the file (trained blocks) replace quantised ones: decode those first, as
    // a quantised weight is not a tensor and is not visited.
    tm.model
        .network
        .dequantise_where(&|name| tensors.contains_key(name))?;
    let mut bad = None;
    tm.visit(&mut |name, t| {
        if let Some(v) = tensors.remove(name) {
            if v.dims() != t.dims() {
                bad = Some(format!(
                    "{name}: shape {:?} in the file, {:?} in the model",
                    v.dims(),
                    t.dims()
                ));
            }
            *t = v;
        }
        Ok(())
    })?;
    if let Some(b) = bad {
        return Err(tuna_core::Error::bad_file(path, b).into());
    }
    if !tensors.is_empty() {
        let mut left: Vec<_> = tensors.keys().cloned().collect();
        left.sort();
        left.truncate(5);
        return Err(tuna_core::Error::bad_file(
            path,
            format!(
                "tensors that match nothing in the model: {}",
                left.join(", ")
            ),
        )
        .into());
    }
    Ok(())
}
