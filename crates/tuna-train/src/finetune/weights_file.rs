//! A model's weights written as one f32 safetensors file without first decoding the whole model:
//! each weight kept in a stored type (GGUF blocks, BF16/F16) is decoded to f32 only while it is
//! written, one at a time, so writing a merged checkpoint of a quantised base costs one weight's
//! f32 copy rather than the whole model's.

use crate::{Error, Result};
use candle_core::{DType, Tensor};
use safetensors::tensor::{Dtype, View};
use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use tuna_models::Model;
use tuna_nn::quant::QuantMatrix;
use tuna_nn::Weight;

/// Where a tensor's values come from.
enum Values {
    Dense(Tensor),
    /// Decoded when written.
    Stored(Arc<QuantMatrix>),
}

/// One tensor of the file, with the slot where a failure to read it is kept (`View::data`
/// cannot return an error).
struct Entry<'a> {
    values: Values,
    shape: Vec<usize>,
    failed: &'a RefCell<Option<String>>,
}

impl Entry<'_> {
    fn f32_bytes(&self) -> candle_core::Result<Vec<u8>> {
        let t = match &self.values {
            Values::Dense(t) => t.clone(),
            Values::Stored(q) => q.dequantize()?,
        };
        let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

impl View for &Entry<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self.f32_bytes() {
            Ok(b) => Cow::Owned(b),
            Err(e) => {
                self.failed.borrow_mut().get_or_insert(e.to_string());
                Cow::Owned(vec![0; self.data_len()])
            }
        }
    }

    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * 4
    }
}

/// Writes every weight of `model` to `path` in f32 (beside it, then renamed into place, so a
/// reader never sees half a file); the number of tensors.
pub fn write_weights(model: &mut Model, path: &Path) -> Result<usize> {
    let failed = RefCell::new(None);
    let mut entries: Vec<(String, Entry)> = Vec::new();
    let mut add = |name: String, values: Values, shape: Vec<usize>| {
        let failed = &failed;
        entries.push((
            name,
            Entry {
                values,
                shape,
                failed,
            },
        ));
    };
    model.network.visit(&mut |name, t| {
        let t = t.detach();
        let shape = t.dims().to_vec();
        add(name.to_string(), Values::Dense(t), shape);
        Ok(())
    })?;
    model.network.linears(&mut |name, l| {
        if let Weight::Quant(q) = l.weight() {
            let shape = vec![q.row_count(), q.col_count()];
            add(format!("{name}.weight"), Values::Stored(q.clone()), shape);
        }
        Ok(())
    })?;
    let n = entries.len();
    let tmp = path.with_extension("safetensors.tmp");
    let refs = entries.iter().map(|(n, e)| (n.as_str(), e));
    let written = safetensors::serialize_to_file(refs, None, &tmp)
        .map_err(|e| e.to_string())
        .and_then(|_| failed.take().map_or(Ok(()), Err));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Invalid(format!("writing {}: {e}", path.display())));
    }
    std::fs::rename(&tmp, path).map_err(|e| tuna_core::Error::io(path, e))?;
    Ok(n)
}
