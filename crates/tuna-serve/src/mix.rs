//! Rows of different adapters of the base model in one decoding step. A second copy of the base
//! (sharing its weights, the mixer) has each linear layer route each run of rows to the delta
//! that the row's adapter puts on that layer ([`tuna_nn::RoutedDelta`]): the frozen products run
//! once over every row, and each row gets what its adapter alone would give it. Adapters that
//! change only linear layers (LoRA, DoRA, IA3) mix, and so do prefix and prompt tuning, whose
//! virtual tokens are in a row's cache from its prefill on; bottleneck adapters add sublayers
//! and decode in batches of their own.

use std::collections::HashMap;
use tuna_adapt::Method;
use tuna_core::Error;
use tuna_models::Model;
use tuna_nn::{RoutedDelta, WeightDelta};

/// The delta each linear layer of an adapter's model has, by module name.
pub type Deltas = HashMap<String, Box<dyn WeightDelta>>;

/// Whether rows of `method`'s adapters decode in the base model's batch.
pub fn mixes(method: &Method) -> bool {
    matches!(
        method,
        Method::Lora(_) | Method::Dora(_) | Method::Ia3(_) | Method::Prefix(_) | Method::Prompt(_)
    )
}

/// The deltas of `model`'s linear layers (copies sharing their tensors).
pub fn deltas(model: &mut Model) -> Result<Deltas, Error> {
    let mut out = HashMap::new();
    model.network.linears(&mut |name, l| {
        if let Some(d) = &l.delta {
            out.insert(name.to_string(), d.clone());
        }
        Ok(())
    })?;
    Ok(out)
}

/// Consecutive rows of the same model, in row order: (model, rows).
pub fn runs(models: &[String]) -> Vec<(&str, usize)> {
    let mut out: Vec<(&str, usize)> = Vec::new();
    for m in models {
        match out.last_mut() {
            Some((last, n)) if *last == m.as_str() => *n += 1,
            _ => out.push((m, 1)),
        }
    }
    out
}

/// Sets every linear layer of `mixer` to route the rows of `runs` ((rows, the deltas of their
/// adapter, `None` for the base) in row order); a layer that no run adapts is left plain.
/// The runs of an adapter share one delta, so that its rows are adapted in one call.
pub fn route(mixer: &mut Model, runs: &[(usize, Option<&Deltas>)]) -> Result<(), Error> {
    mixer.network.linears(&mut |name, l| {
        let mut deltas: Vec<&Box<dyn WeightDelta>> = Vec::new();
        let parts: Vec<(usize, Option<usize>)> = runs
            .iter()
            .map(|(n, d)| {
                let d = d.and_then(|d| d.get(name)).map(|d| {
                    match deltas.iter().position(|seen| std::ptr::eq(*seen, d)) {
                        Some(i) => i,
                        None => {
                            deltas.push(d);
                            deltas.len() - 1
                        }
                    }
                });
                (*n, d)
            })
            .collect();
        l.delta = match deltas.is_empty() {
            false => {
                let owned = deltas.into_iter().cloned().collect();
                Some(Box::new(RoutedDelta::new(parts, owned)))
            }
            true => None,
        };
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_consecutive_rows_of_one_model() {
        let models: Vec<String> = ["a", "a", "b", "a", "c", "c"].map(String::from).to_vec();
        assert_eq!(runs(&models), [("a", 2), ("b", 1), ("a", 1), ("c", 2)]);
        assert!(runs(&[]).is_empty());
    }
}
