//! `tuna serve`: an OpenAI-compatible HTTP server for a model, its adapters and classification
//! runs (see the `tuna-serve` crate).

use crate::args::ModelArgs;
use crate::output::Output;
use crate::retrieval::ServedIndex;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tuna_serve::{Engine, Indexes, Limits, Options};

#[derive(Args)]
pub struct ServeCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// Name the base model is served as (default: the model's file or folder name).
    #[arg(long)]
    name: Option<String>,
    /// An adapter on the base model, served as BASE:NAME: NAME=DIR with DIR a PEFT adapter
    /// folder or a run that keeps one in adapter/ (tuna sft, dpo, ppo). Repeatable.
    #[arg(long = "adapter", value_name = "NAME=DIR")]
    adapters: Vec<String>,
    /// A classification run (tuna train) served as NAME for POST /v1/classify: NAME=RUN_DIR.
    /// Repeatable.
    #[arg(long = "run", value_name = "NAME=RUN_DIR")]
    runs: Vec<String>,
    /// A retrieval index (built with `tuna index add`) served as NAME for POST /v1/search:
    /// NAME=INDEX, INDEX a SQLite file or a postgres:// URL. Repeatable.
    #[arg(long = "index", value_name = "NAME=INDEX")]
    indexes: Vec<String>,
    /// Address to listen on; anything but a loopback address needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Clients must send `Authorization: Bearer KEY` (all of /v1/ and /metrics).
    #[arg(long, env = "TUNA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests that may wait for the model at once; more are answered 429 with Retry-After.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Most tokens one request may generate (a larger max_tokens is answered 400).
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// Tokens generated when a request gives no max_tokens.
    #[arg(long, default_value_t = 256)]
    default_max_tokens: usize,
    /// Most bytes in a request body (a larger one is answered 413).
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Most texts in one embeddings or classify request, or prompts in one completion.
    #[arg(long, default_value_t = 256)]
    max_inputs: usize,
    /// Seconds one request may run; then its generation stops and it is answered 504.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Most prompts decoded together: concurrent generations join one batch (one token of each
    /// per step) up to this many; more wait their turn.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
}

impl ServeCmd {
    /// The address, key and limits of the flags.
    fn options(&self) -> Options {
        Options {
            host: self.host.clone(),
            port: self.port,
            api_key: self.api_key.clone(),
            limits: Limits {
                max_body_bytes: self.max_body,
                max_tokens: self.max_tokens,
                default_max_tokens: self.default_max_tokens,
                queue: self.queue,
                max_inputs: self.max_inputs,
                timeout: Duration::from_secs(self.timeout),
                max_batch: self.max_batch,
            },
            indexes: Indexes::default(),
        }
    }
}

/// `NAME=PATH` of --adapter and --run.
fn named(spec: &str, flag: &str) -> Result<(String, PathBuf)> {
    match spec.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() && !n.contains(':') => {
            Ok((n.to_string(), PathBuf::from(p)))
        }
        _ => bail!("{flag} {spec}: expected NAME=PATH (a name without `:`)"),
    }
}

impl ServeCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        if [
            self.queue,
            self.max_tokens,
            self.timeout as usize,
            self.max_batch,
        ]
        .contains(&0)
        {
            bail!("--queue, --max-tokens, --timeout and --max-batch must be at least 1");
        }
        let opts = self.options();
        // An open address without a key, or a port in use, is said before the models load.
        let listener = tuna_serve::bind(&opts)?;
        let adapters = self
            .adapters
            .iter()
            .map(|s| named(s, "--adapter"))
            .collect::<Result<Vec<_>>>()?;
        let runs = self
            .runs
            .iter()
            .map(|s| named(s, "--run"))
            .collect::<Result<Vec<_>>>()?;
        let mut indexes = Indexes::default();
        for spec in &self.indexes {
            let (n, index) = match spec.split_once('=') {
                Some((n, i)) if !n.is_empty() && !i.is_empty() => (n, i),
                _ => bail!("--index {spec}: expected NAME=INDEX"),
            };
            let served = ServedIndex::open(index, &self.model.device)
                .with_context(|| format!("--index {spec}"))?;
            indexes.0.push((n.to_string(), Arc::new(served)));
        }
        let mut opts = opts;
        opts.indexes = indexes;
        let path = tuna_models::resolve_model(&self.model.model)?;
        let (model, _) = self.model.load()?;
        let name = self.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        });
        let mut engine = Engine::new(&name, model, &path);
        for (n, dir) in &adapters {
            engine
                .add_adapter(n, dir)
                .with_context(|| format!("--adapter {n}={}", dir.display()))?;
        }
        for (n, dir) in &runs {
            engine
                .add_classifier(n, dir)
                .with_context(|| format!("--run {n}={}", dir.display()))?;
        }
        let served: Vec<String> = engine.catalog().entries.into_iter().map(|e| e.id).collect();
        let quiet = out.quiet;
        tuna_serve::serve(engine, listener, opts, |addr| {
            // The one line a supervisor (or a test) reads for the address: always printed.
            println!("listening on http://{addr}");
            if !quiet {
                println!("serving {}", served.join(", "));
            }
            let _ = std::io::stdout().flush();
        })?;
        out.line("stopped");
        Ok(())
    }
}
