//! Adapters of causal LMs, unmerged: a PEFT adapter folder (made by tuna or by PEFT), or a run
//! directory that keeps one in `adapter/` (`tuna sft`, `tuna dpo`, `tuna ppo`), attached to a
//! model through tuna-train's PEFT loader. A served adapter's model shares the base model's
//! weights (candle tensors are reference-counted): each adapter adds only its own tensors, after
//! a transient second load of the base's files (`Model` is not `Clone`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tuna_core::Error;
use tuna_models::{Model, VirtualTokens};
use tuna_nn::{Pooling, Weight};
use tuna_train::finetune::{apply_peft_adapter, peft, HeadConfig};

/// The PEFT adapter folder of `path`: `path` itself or its `adapter/` folder.
pub fn adapter_dir(path: &Path) -> Result<PathBuf, Error> {
    if path.join(peft::CONFIG).exists() {
        return Ok(path.to_path_buf());
    }
    let inner = path.join(tuna_train::finetune::ADAPTER_DIR);
    if inner.join(peft::CONFIG).exists() {
        return Ok(inner);
    }
    Err(Error::Invalid(format!(
        "{} holds no adapter ({} not found in it or in its adapter/ folder)",
        path.display(),
        peft::CONFIG
    )))
}

/// A causal LM with an adapter attached.
pub struct AdaptedLm {
    pub model: Model,
    /// The virtual tokens of an adapter that works at the input (prefix or prompt tuning), for
    /// [`tuna_lm::Generator::with_virtual_tokens`]; `None` for the others.
    pub virt: Option<VirtualTokens>,
    /// Whether its rows decode in the base model's batch ([`crate::mix`]).
    pub mixes: bool,
}

/// `model` with the adapter of `path` (a PEFT folder or a run with one) attached, unmerged.
/// Adapters that work at the input (prefix, prompt tuning) come back as virtual tokens that
/// generation runs before every prompt.
pub fn with_lm_adapter(model: Model, path: &Path) -> Result<AdaptedLm, Error> {
    model.causal_lm()?;
    let dir = adapter_dir(path)?;
    let head = HeadConfig {
        pooling: Pooling::Last,
        hidden: 0,
        dropout: 0.0,
    };
    let tm = apply_peft_adapter(model, &dir, &head, 1)
        .map_err(|e| Error::Invalid(format!("loading the adapter {}: {e}", dir.display())))?;
    let virt = match &tm.input {
        Some(hook) => Some(hook.virtual_tokens().map_err(|e| {
            Error::Invalid(format!(
                "{}: the {} adapter's virtual tokens: {e}",
                dir.display(),
                tm.method.label()
            ))
        })?),
        None => None,
    };
    Ok(AdaptedLm {
        mixes: crate::mix::mixes(&tm.method),
        model: tm.model,
        virt,
    })
}

/// Makes every weight of `twin` kept in its stored quantised type the same matrix as `base`'s
/// of that name (one copy in memory, shared).
fn share_quantised(base: &mut Model, twin: &mut Model) -> Result<usize, Error> {
    let mut held = HashMap::new();
    base.network.linears(&mut |name, l| {
        if let Weight::Quant(q) = l.weight() {
            held.insert(name.to_string(), q.clone());
        }
        Ok(())
    })?;
    base.network.vocab_weights(&mut |name, w| {
        if let Weight::Quant(q) = w {
            held.insert(name.to_string(), q.clone());
        }
        Ok(())
    })?;
    let mut shared = 0;
    twin.network.linears(&mut |name, l| {
        if let (Some(q), true) = (held.get(name), l.weight().is_quantised()) {
            l.set_quantised(q.clone())?;
            shared += 1;
        }
        Ok(())
    })?;
    twin.network.vocab_weights(&mut |name, w| {
        if let (Some(q), true) = (held.get(name), w.is_quantised()) {
            *w = Weight::Quant(q.clone());
            shared += 1;
        }
        Ok(())
    })?;
    Ok(shared)
}

/// Makes every tensor of `twin` (a second load of `base`'s files) the same tensor as `base`'s of
/// that name and shape, so that the copy's memory is freed and both share one set of weights.
pub fn share_weights(base: &mut Model, twin: &mut Model) -> Result<usize, Error> {
    let mut shared = share_quantised(base, twin)?;
    let mut held: HashMap<String, candle_core::Tensor> = HashMap::new();
    base.network.visit(&mut |name, t| {
        held.insert(name.to_string(), t.clone());
        Ok(())
    })?;
    twin.network.visit(&mut |name, t| {
        if let Some(b) = held.get(name) {
            if b.dims() == t.dims() && b.dtype() == t.dtype() {
                *t = b.clone();
                shared += 1;
            }
        }
        Ok(())
    })?;
    Ok(shared)
}
