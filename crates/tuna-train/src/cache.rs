//! On-disk cache of embeddings, keyed by model + texts + embedding options, so that rerunning a
//! feature-based experiment does no model work.
//!
//! One safetensors file per key under the cache folder, written atomically.

use crate::embedder::{embed_texts, EmbedOptions, Embeddings};
use crate::progress::Progress;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tuna_core::{fsutil, Error, Result};
use tuna_models::Model;

/// The cache folder: `$TUNA_CACHE_DIR`, else `$XDG_CACHE_HOME/tuna`, else `~/.cache/tuna`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TUNA_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("tuna");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("tuna"),
        None => PathBuf::from(".tuna-cache"),
    }
}

/// Identifies a model's files cheaply: config and tokenizer contents, and the name, size and
/// modification time of every weight file.
pub fn model_fingerprint(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut add_file = |p: &Path| -> Result<()> {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_small_text = name.ends_with(".json") || name.ends_with(".txt");
        if is_small_text {
            h.update(std::fs::read(p).map_err(|e| Error::io(p, e))?);
        } else {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            h.update(format!("{name}:{}:{mtime}", meta.len()));
        }
        Ok(())
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            add_file(&f)?;
        }
    } else {
        add_file(path)?;
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache key of embedding `texts` with a model and options.
pub fn cache_key(model_fp: &str, texts: &[String], opts: &EmbedOptions) -> String {
    let mut h = Sha256::new();
    h.update(model_fp);
    h.update(serde_json::to_vec(&(opts.pooling, opts.max_len, opts.normalize)).unwrap_or_default());
    for t in texts {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    hex(&h.finalize())[..32].to_string()
}

/// An embedding cache in one folder.
pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("emb-{key}.safetensors"))
    }

    /// The cached embeddings for `key`, if present and readable.
    pub fn get(&self, key: &str) -> Option<Embeddings> {
        let path = self.file(key);
        let bytes = std::fs::read(&path).ok()?;
        let st = safetensors::SafeTensors::deserialize(&bytes).ok()?;
        let view = st.tensor("embeddings").ok()?;
        let shape = view.shape();
        if shape.len() != 2 || view.dtype() != safetensors::Dtype::F32 {
            return None;
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(Embeddings {
            data,
            rows: shape[0],
            cols: shape[1],
        })
    }

    /// Stores `emb` under `key`, atomically.
    pub fn put(&self, key: &str, emb: &Embeddings) -> Result<()> {
        let path = self.file(key);
        let bytes: Vec<u8> = emb.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![emb.rows, emb.cols],
            &bytes,
        )
        .map_err(|e| Error::Invalid(format!("cannot store embeddings: {e}")))?;
        let out = safetensors::tensor::serialize([("embeddings", view)], None)
            .map_err(|e| Error::Invalid(format!("cannot store embeddings: {e}")))?;
        fsutil::atomic_write(&path, &out)
    }
}

/// Embeds `texts`, reading from and writing to `cache` when one is given. Returns the
/// embeddings and whether they came from the cache.
pub fn embed_cached(
    model: &Model,
    model_fp: &str,
    texts: &[String],
    opts: &EmbedOptions,
    cache: Option<&EmbeddingCache>,
    progress: &dyn Progress,
) -> Result<(Embeddings, bool)> {
    let key = cache_key(model_fp, texts, opts);
    if let Some(hit) = cache.and_then(|c| c.get(&key)) {
        if hit.rows == texts.len() && hit.cols == model.info.hidden_size {
            tracing::info!(rows = hit.rows, key, "embeddings from cache");
            return Ok((hit, true));
        }
    }
    let emb = embed_texts(model, texts, opts, progress)?;
    if let Some(c) = cache {
        c.put(&key, &emb)?;
    }
    Ok((emb, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tuna_nn::Pooling;

    fn opts() -> EmbedOptions {
        EmbedOptions {
            pooling: Pooling::Mean,
            max_len: 128,
            batch_size: 8,
            normalize: false,
        }
    }

    #[test]
    fn round_trip_and_key_sensitivity() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::new(dir.path());
        let texts = vec!["a".to_string(), "b".to_string()];
        let key = cache_key("fp", &texts, &opts());
        assert!(cache.get(&key).is_none());
        let emb = Embeddings {
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            rows: 2,
            cols: 3,
        };
        cache.put(&key, &emb).unwrap();
        assert_eq!(cache.get(&key).unwrap(), emb);
        let mut other = opts();
        other.pooling = Pooling::Cls;
        assert_ne!(key, cache_key("fp", &texts, &other));
        assert_ne!(key, cache_key("fp2", &texts, &opts()));
        // Concatenation ambiguity is excluded by the length prefix.
        let joined = vec!["ab".to_string()];
        assert_ne!(
            cache_key("fp", &joined, &opts()),
            cache_key("fp", &["a".into(), "b".into()], &opts())
        );
    }
}
