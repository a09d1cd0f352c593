//! `tuna embed`: pooled embeddings of a file of texts, cached on disk.

use crate::args::{EmbedArgs, ModelArgs, ReadArgs};
use crate::output::Output;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tuna_train::cache::embed_cached;
use tuna_train::embedder::Embeddings;

#[derive(Args)]
pub struct EmbedCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// File of texts (any supported format; labels are ignored).
    #[arg(long, short)]
    input: PathBuf,
    /// Where to write the embeddings: .safetensors (tensor `embeddings`, rows in input order) or
    /// .jsonl (one `{"embedding": [...]}` per text). Without it, only the cache is filled.
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    embed: EmbedArgs,
}

impl EmbedCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        // Before any work: a file name we cannot write is known from the start.
        let format = self.out.as_deref().map(OutFormat::of).transpose()?;
        let ds = self.read.read_texts(&self.input, out)?;
        let texts: Vec<String> = ds.examples.into_iter().map(|e| e.text).collect();
        let (model, fp) = self.model.load()?;
        let opts = self.embed.options(&model)?;
        let cache = self.embed.cache();
        let t0 = Instant::now();
        let bar = out.bar();
        let (emb, cached) = embed_cached(&model, &fp, &texts, &opts, cache.as_ref(), &bar)?;
        let secs = t0.elapsed().as_secs_f64();
        if let (Some(path), Some(format)) = (&self.out, format) {
            write_embeddings(path, format, &emb)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let rate = texts.len() as f64 / secs.max(1e-9);
        out.line(format!(
            "embedded {} texts -> {} dims ({}) in {secs:.2}s{}",
            emb.rows,
            emb.cols,
            opts.pooling,
            if cached {
                " (from cache)".to_string()
            } else {
                format!(", {rate:.1} texts/s")
            }
        ));
        out.result(json!({
            "ok": true, "command": "embed", "rows": emb.rows, "dim": emb.cols,
            "pooling": opts.pooling, "seconds": secs, "texts_per_second": rate, "cached": cached,
            "out": self.out,
        }));
        Ok(())
    }
}

/// The file formats `--out` can name.
#[derive(Clone, Copy)]
enum OutFormat {
    Safetensors,
    Jsonl,
}

impl OutFormat {
    /// The format `path`'s extension names, or an error that says which ones exist.
    fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "safetensors" => Ok(Self::Safetensors),
            "jsonl" => Ok(Self::Jsonl),
            _ => bail!(
                "--out {}: must end in .safetensors or .jsonl",
                path.display()
            ),
        }
    }
}

fn write_embeddings(path: &Path, format: OutFormat, emb: &Embeddings) -> Result<()> {
    let bytes = match format {
        OutFormat::Safetensors => {
            let t = candle_core::Tensor::from_slice(
                &emb.data,
                (emb.rows, emb.cols),
                &candle_core::Device::Cpu,
            )?;
            let tmp = tempfile::NamedTempFile::new_in(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            )?;
            t.save_safetensors("embeddings", tmp.path())?;
            tmp.persist(path)?;
            return Ok(());
        }
        OutFormat::Jsonl => {
            let mut buf = Vec::new();
            for i in 0..emb.rows {
                serde_json::to_writer(&mut buf, &json!({ "embedding": emb.row(i) }))?;
                buf.write_all(b"\n")?;
            }
            buf
        }
    };
    tuna_core::fsutil::atomic_write(path, &bytes)?;
    Ok(())
}
