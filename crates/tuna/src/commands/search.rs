//! `tuna search`: the chunks of an index closest to a query, with scores and sources.

use crate::commands::ask::retrieve;
use crate::output::Output;
use crate::retrieval::IndexArgs;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub struct SearchCmd {
    #[command(flatten)]
    index: IndexArgs,
    /// What to look for.
    query: String,
    /// How many chunks.
    #[arg(long, short, default_value_t = 5)]
    k: usize,
}

impl SearchCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let (mut store, meta) = self.index.open_built()?;
        let encoder = self.index.encoder(&meta)?;
        let t0 = Instant::now();
        let hits = retrieve(store.as_mut(), &encoder, &self.query, self.k)?;
        let secs = t0.elapsed().as_secs_f64();
        if !out.json {
            for (i, h) in hits.iter().enumerate() {
                println!("{}. {:.3}  {} (chunk {})", i + 1, h.score, h.source, h.seq);
                println!("   {}", snippet(&h.text, 240));
            }
            if hits.is_empty() {
                out.line("no chunks in the index");
            }
        }
        out.result(json!({
            "ok": true, "command": "search", "query": self.query, "hits": hits,
            "seconds": secs,
        }));
        Ok(())
    }
}

/// The text on one line, cut to about `max` characters.
fn snippet(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
