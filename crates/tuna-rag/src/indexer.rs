//! Adding documents to an index: skip the unchanged (same content hash), cut the rest into
//! chunks, embed them in batches across documents, and write each batch of documents in one
//! transaction, so a crash leaves every document fully in or fully out.

use crate::chunk::{chunk_text, ChunkConfig};
use crate::docs::Document;
use crate::error::Result;
use crate::store::{DocEntry, NewChunk, Store};
use serde::Serialize;

/// The model side of indexing: token spans for chunking, and unit-length vectors.
pub trait Embedder {
    /// Vector length.
    fn dim(&self) -> usize;
    /// Byte spans of the tokens of `text` (no special tokens, no truncation).
    fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>>;
    /// One unit-length vector per text.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
}

/// The text embedded for a chunk: its document's title (when known) on the first line, so a
/// chunk that never names its subject still carries it.
pub fn embed_input(title: Option<&str>, chunk: &str) -> String {
    match title {
        Some(t) if !t.is_empty() => format!("{t}\n{chunk}"),
        _ => chunk.to_string(),
    }
}

/// What one `add` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AddReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Chunks written.
    pub chunks: usize,
}

/// Chunks embedded and written together (one transaction).
const BATCH_CHUNKS: usize = 256;

/// Adds `docs` to `store`; `progress(done, total)` is called after each written batch. Takes
/// the store's writer lock first (waiting for another writer to finish), so the documents it
/// skips as unchanged include everything an earlier or concurrent writer stored.
pub fn add_documents(
    store: &mut dyn Store,
    docs: &[Document],
    embedder: &dyn Embedder,
    chunking: &ChunkConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<AddReport> {
    chunking.validate()?;
    store.lock_writer(&mut || {})?;
    let known = store.hashes()?;
    let mut report = AddReport::default();
    let mut pending: Vec<(&Document, String, Vec<crate::chunk::Chunk>)> = Vec::new();
    let mut pending_chunks = 0;
    let total = docs.len();
    let mut done = 0;
    for doc in docs {
        let hash = doc.hash();
        match known.get(&doc.source) {
            Some(h) if *h == hash => {
                report.unchanged += 1;
                done += 1;
                continue;
            }
            Some(_) => report.updated += 1,
            None => report.added += 1,
        }
        let spans = embedder.token_spans(&doc.text)?;
        let chunks = chunk_text(&doc.text, &spans, chunking);
        pending_chunks += chunks.len();
        pending.push((doc, hash, chunks));
        if pending_chunks >= BATCH_CHUNKS {
            done += pending.len();
            report.chunks += write_batch(store, &mut pending, embedder)?;
            pending_chunks = 0;
            progress(done, total);
        }
    }
    done += pending.len();
    report.chunks += write_batch(store, &mut pending, embedder)?;
    progress(done, total);
    Ok(report)
}

/// Embeds and writes the pending documents; returns the chunks written.
fn write_batch(
    store: &mut dyn Store,
    pending: &mut Vec<(&Document, String, Vec<crate::chunk::Chunk>)>,
    embedder: &dyn Embedder,
) -> Result<usize> {
    if pending.is_empty() {
        return Ok(0);
    }
    let inputs: Vec<String> = pending
        .iter()
        .flat_map(|(d, _, cs)| cs.iter().map(|c| embed_input(d.title.as_deref(), &c.text)))
        .collect();
    let mut vectors = embedder.embed(&inputs)?.into_iter();
    let entries: Vec<DocEntry> = pending
        .drain(..)
        .map(|(d, hash, cs)| DocEntry {
            source: d.source.clone(),
            title: d.title.clone(),
            hash,
            chunks: cs
                .into_iter()
                .map(|c| NewChunk {
                    seq: c.seq,
                    text: c.text,
                    start: c.start,
                    end: c.end,
                    vector: vectors.next().expect("one vector per chunk"),
                })
                .collect(),
        })
        .collect();
    store.put(&entries)?;
    Ok(inputs.len())
}
