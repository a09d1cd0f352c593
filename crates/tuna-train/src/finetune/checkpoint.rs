//! Training checkpoints: the trainable values, the optimiser moments, the best epoch's values
//! and the loop position, written atomically (a new directory renamed over the old one) so a
//! kill at any moment leaves the last complete checkpoint.

use super::adamw::AdamW;
use super::params::Params;
use crate::Result;
use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tuna_core::fsutil;

fn err(path: &Path, e: impl std::fmt::Display) -> crate::Error {
    tuna_core::Error::bad_file(path, e.to_string()).into()
}

/// Writes a checkpoint into `dir` (replacing the previous one atomically).
pub fn save<S: Serialize>(
    dir: &Path,
    state: &S,
    params: &Params,
    opt: &AdamW,
    best: Option<&[Tensor]>,
) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| tuna_core::Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| tuna_core::Error::io(&tmp, e))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (i, p) in params.list.iter().enumerate() {
        tensors.insert(format!("param.{}", p.name), p.var.as_tensor().clone());
        tensors.insert(format!("m.{}", p.name), opt.m[i].clone());
        tensors.insert(format!("v.{}", p.name), opt.v[i].clone());
        if let Some(b) = best {
            tensors.insert(format!("best.{}", p.name), b[i].clone());
        }
    }
    let st = tmp.join("state.safetensors");
    candle_core::safetensors::save(&tensors, &st).map_err(|e| err(&st, e))?;
    fsutil::write_json(&tmp.join("state.json"), &(state, opt.t))?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| tuna_core::Error::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| tuna_core::Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| tuna_core::Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| tuna_core::Error::io(&old, e))?;
    }
    Ok(())
}

/// The complete checkpoint in `dir` (or the previous one, if a kill came mid-replacement).
pub fn find(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.with_extension("old")]
        .into_iter()
        .find(|d| d.join("state.json").exists() && d.join("state.safetensors").exists())
}

/// Restores `params`, `opt` and the best values from a checkpoint; returns the loop state.
pub fn load<S: DeserializeOwned>(
    dir: &Path,
    params: &Params,
    opt: &mut AdamW,
    device: &Device,
) -> Result<(S, Option<Vec<Tensor>>)> {
    let (state, t): (S, usize) = fsutil::read_json(&dir.join("state.json"))?;
    let st = dir.join("state.safetensors");
    let tensors = candle_core::safetensors::load(&st, device).map_err(|e| err(&st, e))?;
    let get = |k: String| -> Result<Tensor> {
        tensors
            .get(&k)
            .cloned()
            .ok_or_else(|| err(&st, format!("checkpoint lacks {k}")))
    };
    let mut best = vec![];
    for (i, p) in params.list.iter().enumerate() {
        p.var.set(&get(format!("param.{}", p.name))?)?;
        opt.m[i] = get(format!("m.{}", p.name))?;
        opt.v[i] = get(format!("v.{}", p.name))?;
        if let Ok(b) = get(format!("best.{}", p.name)) {
            best.push(b);
        }
    }
    opt.t = t;
    let best = (best.len() == params.list.len() && !best.is_empty()).then_some(best);
    Ok((state, best))
}
