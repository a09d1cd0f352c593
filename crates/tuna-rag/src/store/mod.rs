//! Vector stores: chunks, their vectors and their documents, written one transaction per batch
//! of documents (each document fully in or fully out), searched by cosine similarity. Writers
//! take the index's writer lock first ([`Store::lock_writer`]), so they run one after another.
//! `open` picks the store from the index name: `postgres://…` (or `postgresql://…`) is
//! PostgreSQL with pgvector, anything else a SQLite file with sqlite-vec.

mod postgres;
mod sqlite;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

use crate::chunk::ChunkConfig;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What an index was built with; later additions and queries must use the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// The embedding model as given when the index was created.
    pub model: String,
    /// Fingerprint of the model's files.
    pub fingerprint: String,
    /// The embedding of [`PROBE_TEXT`]: a model that gives another vector is another model.
    #[serde(default)]
    pub probe: Vec<f32>,
    /// Vector length.
    pub dim: usize,
    /// Pooling of token states.
    pub pooling: String,
    /// How documents were cut.
    pub chunking: ChunkConfig,
}

/// The text whose embedding identifies the encoder of an index.
pub const PROBE_TEXT: &str = "The quick brown fox jumps over the lazy dog near the river bank.";

/// A chunk ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub seq: usize,
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// Unit-length embedding.
    pub vector: Vec<f32>,
}

/// A document with all its chunks, replacing any earlier version of the same source.
#[derive(Debug, Clone, PartialEq)]
pub struct DocEntry {
    pub source: String,
    pub title: Option<String>,
    pub hash: String,
    pub chunks: Vec<NewChunk>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub source: String,
    pub title: Option<String>,
    /// Position of the chunk in its document.
    pub seq: usize,
    pub text: String,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// Size and health of an index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub store: &'static str,
    pub documents: usize,
    pub chunks: usize,
    pub vectors: usize,
    /// Documents whose stored chunk count differs from the number recorded with them (0 in a
    /// healthy index).
    pub incomplete_documents: usize,
    /// Bytes on disk, where the store can tell.
    pub bytes: Option<u64>,
}

/// A vector store holding one index.
pub trait Store {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// What the index was built with, or `None` for a new, empty index.
    fn meta(&mut self) -> Result<Option<IndexMeta>>;
    /// Records what the index is built with and creates the vector table (once).
    fn init(&mut self, meta: &IndexMeta) -> Result<()>;
    /// Takes the index's writer lock, held until this store is dropped: one writer at a time
    /// (`index add`, `index rm`), so a second one waits and then sees the first's documents
    /// instead of embedding and writing them again. `waiting` is called once, before waiting
    /// for another holder; taking the lock again is a no-op. Readers never take it.
    fn lock_writer(&mut self, waiting: &mut dyn FnMut()) -> Result<()>;
    /// Source -> content hash of every document.
    fn hashes(&mut self) -> Result<HashMap<String, String>>;
    /// Writes documents in one transaction, each replacing its earlier version.
    fn put(&mut self, docs: &[DocEntry]) -> Result<()>;
    /// Deletes the named documents in one transaction; returns how many there were.
    fn delete(&mut self, sources: &[String]) -> Result<usize>;
    /// The `k` chunks most similar to `query`, best first.
    fn search(&mut self, query: &[f32], k: usize) -> Result<Vec<Hit>>;
    fn stats(&mut self) -> Result<Stats>;
}

/// Opens (creating if needed) the index named by `spec`.
pub fn open(spec: &str) -> Result<Box<dyn Store>> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::open(spec)?))
    } else {
        if spec.contains("://") {
            return Err(Error::invalid(format!(
                "index `{spec}`: give a SQLite file path or a postgres:// URL"
            )));
        }
        Ok(Box::new(SqliteStore::open(std::path::Path::new(spec))?))
    }
}

/// Sources in `all` named by `pattern`: the source itself, the records of a file
/// (`FILE#…`), or everything under a directory (`DIR/…`).
pub fn matching_sources<'a>(all: impl Iterator<Item = &'a String>, pattern: &str) -> Vec<String> {
    let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
    let dir = format!("{}/", pattern.trim_end_matches('/'));
    let file = format!("{pattern}#");
    let mut out: Vec<String> = all
        .filter(|s| *s == pattern || s.starts_with(&file) || s.starts_with(&dir))
        .cloned()
        .collect();
    out.sort();
    out
}

/// Little-endian f32 bytes (the vector format of sqlite-vec).
pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `[x,y,…]`, pgvector's text form.
pub(crate) fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

/// Refuses vectors of the wrong length before they reach a store.
pub(crate) fn check_dims(docs: &[DocEntry], dim: usize) -> Result<()> {
    for d in docs {
        if let Some(c) = d.chunks.iter().find(|c| c.vector.len() != dim) {
            return Err(Error::invalid(format!(
                "{}: vector of length {} in an index of dimension {dim}",
                d.source,
                c.vector.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_by_file_directory_and_name() {
        let all: Vec<String> = ["a/x.md", "a/y.jsonl#1", "a/y.jsonl#2", "b/x.md", "a/xy.md"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(matching_sources(all.iter(), "a/x.md"), ["a/x.md"]);
        assert_eq!(
            matching_sources(all.iter(), "a/y.jsonl"),
            ["a/y.jsonl#1", "a/y.jsonl#2"]
        );
        assert_eq!(matching_sources(all.iter(), "./a/").len(), 4);
        assert!(matching_sources(all.iter(), "c").is_empty());
    }

    #[test]
    fn vector_forms() {
        assert_eq!(vector_text(&[1.0, -0.5]), "[1,-0.5]");
        assert_eq!(vector_bytes(&[1.0]), 1.0f32.to_le_bytes().to_vec());
    }
}
