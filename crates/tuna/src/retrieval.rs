//! What the index verbs share: the `--index` flag, opening a store, and the encoder that built
//! an index (loaded again from its recorded path, and checked to embed a probe text as it did).

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use tuna_models::Model;
use tuna_nn::Pooling;
use tuna_rag::{Embedder, IndexMeta, Store};
use tuna_train::embedder::{embed_texts, EmbedOptions};
use tuna_train::progress::Silent;

/// Which index.
#[derive(Args, Clone)]
pub struct IndexArgs {
    /// The index: a SQLite file (created if missing), or postgres://USER@HOST:PORT/DB#NAME
    /// (PostgreSQL with pgvector; NAME picks one of several indexes in the database).
    #[arg(long, short = 'x', env = "TUNA_INDEX")]
    pub index: String,
    /// Device of the encoder: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl IndexArgs {
    /// Opens (or creates) the store.
    pub fn open(&self) -> Result<Box<dyn Store>> {
        tuna_rag::open(&self.index).with_context(|| format!("opening index {}", self.index))
    }

    /// Takes the index's writer lock, saying so when another writer holds it and this one waits.
    pub fn lock_writer(&self, store: &mut dyn Store, out: &crate::output::Output) -> Result<()> {
        let index = &self.index;
        store
            .lock_writer(&mut || {
                out.line(format!(
                    "index {index} is being written by another process: waiting for it to finish"
                ))
            })
            .with_context(|| format!("locking index {index} for writing"))
    }

    /// The store with its metadata; an error for an index that holds nothing yet.
    pub fn open_built(&self) -> Result<(Box<dyn Store>, IndexMeta)> {
        let mut store = self.open()?;
        let Some(meta) = store.meta()? else {
            bail!(
                "index {} is empty: build it first with `tuna index add --index {} --model ENCODER PATH...`",
                self.index,
                self.index
            );
        };
        Ok((store, meta))
    }

    /// Loads the encoder an index was built with.
    pub fn encoder(&self, meta: &IndexMeta) -> Result<IndexEncoder> {
        IndexEncoder::load(&meta.model, &self.device, Some(meta))
    }
}

/// An encoder turned into the indexer's [`Embedder`]: mean/CLS pooled, unit-length vectors.
pub struct IndexEncoder {
    pub model: Model,
    /// Absolute path of the model, as recorded in the index.
    pub path: PathBuf,
    pub fingerprint: String,
    pub options: EmbedOptions,
}

impl IndexEncoder {
    /// Loads `spec`; with `meta`, refuses a model that embeds the probe text differently.
    pub fn load(spec: &str, device: &str, meta: Option<&IndexMeta>) -> Result<Self> {
        let device = tuna_core::pick_device(device)?;
        let path = tuna_models::resolve_model(spec)?;
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let fingerprint = tuna_train::cache::model_fingerprint(&path)?;
        let model = tuna_models::load_model(&path, &device)
            .with_context(|| format!("loading encoder {spec}"))?;
        let pooling = match meta {
            Some(m) => m
                .pooling
                .parse::<Pooling>()
                .map_err(|e| anyhow::anyhow!("index pooling `{}`: {e}", m.pooling))?,
            None => model.info.family.default_pooling(),
        };
        let options = EmbedOptions {
            pooling,
            max_len: 256.min(model.info.max_positions),
            batch_size: 32,
            normalize: true,
        };
        let enc = IndexEncoder {
            model,
            path,
            fingerprint,
            options,
        };
        if let Some(m) = meta {
            if m.probe.is_empty() {
                bail!("the index records no encoder probe (an older tuna made it): rebuild it");
            }
            let probe = enc.probe()?;
            let cos: f32 = probe.iter().zip(&m.probe).map(|(a, b)| a * b).sum();
            if m.probe.len() != probe.len() || cos < 0.999 {
                bail!(
                    "the index was built with {}, and {} embeds differently: vectors from \
                     different models cannot be compared; rebuild the index",
                    m.model,
                    enc.path.display()
                );
            }
        }
        Ok(enc)
    }

    /// The embedding of the probe text that identifies this encoder in an index.
    pub fn probe(&self) -> Result<Vec<f32>> {
        Ok(self
            .vectors(&[tuna_rag::store::PROBE_TEXT.to_string()])?
            .remove(0))
    }

    /// Unit-length vectors of `texts`, one per text.
    pub fn vectors(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let e = embed_texts(&self.model, texts, &self.options, &Silent)?;
        Ok((0..e.rows).map(|i| e.row(i).to_vec()).collect())
    }
}

impl Embedder for IndexEncoder {
    fn dim(&self) -> usize {
        self.model.info.hidden_size
    }

    fn token_spans(&self, text: &str) -> tuna_rag::Result<Vec<(usize, usize)>> {
        self.model
            .tokenizer
            .token_spans(text)
            .map_err(|e| tuna_rag::Error::Model(e.to_string()))
    }

    fn embed(&self, texts: &[String]) -> tuna_rag::Result<Vec<Vec<f32>>> {
        self.vectors(texts)
            .map_err(|e| tuna_rag::Error::Model(format!("{e:#}")))
    }
}

/// An index served by `tuna serve --index NAME=INDEX`: its encoder loaded once (and checked
/// against the index), the store opened for each search (readers take no lock).
pub struct ServedIndex {
    spec: String,
    encoder: std::sync::Mutex<IndexEncoder>,
}

impl ServedIndex {
    /// Opens the index `spec` (it must hold documents) and loads its encoder.
    pub fn open(spec: &str, device: &str) -> Result<Self> {
        let args = IndexArgs {
            index: spec.to_string(),
            device: device.to_string(),
        };
        let (_, meta) = args.open_built()?;
        let encoder = args.encoder(&meta)?;
        Ok(Self {
            spec: spec.to_string(),
            encoder: std::sync::Mutex::new(encoder),
        })
    }
}

impl tuna_serve::Searcher for ServedIndex {
    fn search(&self, query: &str, k: usize) -> std::result::Result<Vec<tuna_rag::Hit>, String> {
        let v = {
            let enc = self.encoder.lock().unwrap_or_else(|p| p.into_inner());
            enc.vectors(&[query.to_string()])
                .map_err(|e| format!("{e:#}"))?
        };
        let mut store = tuna_rag::open(&self.spec).map_err(|e| e.to_string())?;
        store.search(&v[0], k).map_err(|e| e.to_string())
    }
}
