//! A model's weights written as one f32 safetensors file without first decoding the whole model,
//! and without an f32 copy of any whole weight: the file is streamed, each tensor in pieces of
//! about 1 MiB. A tensor's values are written straight from its storage; a weight kept in a
//! stored type (GGUF blocks, BF16/F16) is decoded a band of rows at a time while it is written.
//! Writing a merged checkpoint of a quantised base so costs a few MiB beyond the model, where a
//! whole f32 copy of the largest weight (SmolLM2's embedding: 113 MB, and as much again for
//! its bytes) would otherwise be the run's peak.
//!
//! The layout is safetensors' (an 8-byte little-endian header length, a JSON header padded with
//! spaces to a multiple of 8 bytes, then the tensors' bytes back to back in header order).

use crate::{Error, Result};
use candle_core::{DType, Device, Storage, Tensor};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tuna_models::Model;
use tuna_nn::quant::QuantMatrix;
use tuna_nn::Weight;

/// Values written per piece.
const PIECE: usize = 1 << 18;

/// Where a tensor's values come from.
enum Values {
    Dense(Tensor),
    /// Decoded when written, a band of rows at a time.
    Stored(Arc<QuantMatrix>),
}

impl Values {
    fn shape(&self) -> Vec<usize> {
        match self {
            Values::Dense(t) => t.dims().to_vec(),
            Values::Stored(q) => vec![q.row_count(), q.col_count()],
        }
    }

    /// Writes the values as little-endian f32, a piece at a time.
    fn write_to(&self, w: &mut impl Write) -> std::result::Result<(), String> {
        let err = |e: candle_core::Error| e.to_string();
        match self {
            Values::Dense(t) => {
                let t = t.to_dtype(DType::F32).map_err(err)?;
                let t = t.to_device(&Device::Cpu).map_err(err)?;
                let t = t.contiguous().map_err(err)?;
                let (storage, layout) = t.storage_and_layout();
                let (Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((a, b))) =
                    (&*storage, layout.contiguous_offsets())
                else {
                    return Err("an f32 CPU tensor was expected".into());
                };
                v[a..b].chunks(PIECE).try_for_each(|c| write_f32(w, c))
            }
            Values::Stored(q) => {
                let (rows, cols) = (q.row_count() as u32, q.col_count().max(1));
                let band = (PIECE / cols).max(1) as u32;
                (0..rows).step_by(band as usize).try_for_each(|r| {
                    let ids: Vec<u32> = (r..(r + band).min(rows)).collect();
                    write_f32(w, &q.gather_rows(&ids).map_err(err)?)
                })
            }
        }
    }
}

fn write_f32(w: &mut impl Write, v: &[f32]) -> std::result::Result<(), String> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    w.write_all(&bytes).map_err(|e| e.to_string())
}

/// Every weight of `model` by key name: the tensors, then the weights kept in a stored type.
fn entries(model: &mut Model) -> Result<Vec<(String, Values)>> {
    let mut entries = Vec::new();
    model.network.visit(&mut |name, t| {
        entries.push((name.to_string(), Values::Dense(t.detach())));
        Ok(())
    })?;
    model.network.linears(&mut |name, l| {
        if let Weight::Quant(q) = l.weight() {
            entries.push((format!("{name}.weight"), Values::Stored(q.clone())));
        }
        Ok(())
    })?;
    model.network.vocab_weights(&mut |name, w| {
        if let Weight::Quant(q) = w {
            entries.push((name.to_string(), Values::Stored(q.clone())));
        }
        Ok(())
    })?;
    Ok(entries)
}

/// The safetensors header of `entries` (all f32, in this order), padded to 8 bytes.
fn header(entries: &[(String, Values)]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    let mut at = 0usize;
    for (name, v) in entries {
        let shape = v.shape();
        let end = at + shape.iter().product::<usize>() * 4;
        map.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [at, end]}),
        );
        at = end;
    }
    let mut h = serde_json::Value::Object(map).to_string().into_bytes();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    h
}

fn write_file(entries: &[(String, Values)], path: &Path) -> std::result::Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w = std::io::BufWriter::new(file);
    let h = header(entries);
    w.write_all(&(h.len() as u64).to_le_bytes())
        .and_then(|_| w.write_all(&h))
        .map_err(|e| e.to_string())?;
    for (_, v) in entries {
        v.write_to(&mut w)?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// Writes every weight of `model` to `path` in f32 (beside it, then renamed into place, so a
/// reader never sees half a file); the number of tensors.
pub fn write_weights(model: &mut Model, path: &Path) -> Result<usize> {
    let entries = entries(model)?;
    let tmp = path.with_extension("safetensors.tmp");
    if let Err(e) = write_file(&entries, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Invalid(format!("writing {}: {e}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| tuna_core::Error::io(path, e))?;
    Ok(entries.len())
}
