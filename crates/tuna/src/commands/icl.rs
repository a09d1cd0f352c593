//! `tuna icl`: classify with a causal LM and k-shot prompts, scored by the likelihood of each
//! label's word.

use crate::args::{DataArgs, ModelArgs};
use crate::output::Output;
use crate::progress::Bar;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tuna_data::{evaluate, Metrics};
use tuna_lm::{
    DemoPicker, IclClassifier, IclPrediction, IclSettings, Pool, PromptTemplate, Selection,
};
use tuna_models::Model;
use tuna_train::cache::{default_cache_dir, embed_cached, model_fingerprint, EmbeddingCache};
use tuna_train::embedder::EmbedOptions;
use tuna_train::task_data::{Part, TaskData};
use tuna_train::Progress;

/// How demonstrations are chosen.
#[derive(Clone, Copy, ValueEnum)]
pub enum SelectArg {
    Random,
    Balanced,
    Nearest,
}

/// The prompt and how queries are scored.
#[derive(Args, Clone)]
pub struct IclArgs {
    /// Verbaliser: the word the model should say for a label, as LABEL=WORD (repeatable;
    /// labels not named use their own name).
    #[arg(long = "verbalizer", value_name = "LABEL=WORD")]
    pub verbalizer: Vec<String>,
    /// Demonstrations per prompt (0 = zero-shot).
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// How demonstrations are chosen from the training part.
    #[arg(long, value_enum, default_value = "random")]
    pub select: SelectArg,
    /// Encoder whose embeddings find the nearest demonstrations (with --select nearest).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Calibrate against the content-free input "N/A" with the same demonstrations.
    #[arg(long)]
    pub calibrate: bool,
    /// Sum label log-probabilities instead of averaging them per token.
    #[arg(long)]
    pub no_length_norm: bool,
    /// Text between demonstrations (`\n` written as two characters is a newline).
    #[arg(long, default_value = "\\n\\n")]
    pub separator: String,
    /// Text once before the demonstrations.
    #[arg(long)]
    pub instruction: Option<String>,
    /// Queries per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Score only N examples of the evaluated part, drawn class by class in proportion
    /// (stratified, with --seed).
    #[arg(long)]
    pub limit: Option<usize>,
}

impl IclArgs {
    /// Label -> word from the --verbalizer flags.
    pub fn verbalizers(&self) -> Result<BTreeMap<String, String>> {
        self.verbalizer
            .iter()
            .map(|v| match v.split_once('=') {
                Some((l, w)) if !l.is_empty() && !w.is_empty() => {
                    Ok((l.to_string(), w.to_string()))
                }
                _ => bail!("--verbalizer takes LABEL=WORD, got `{v}`"),
            })
            .collect()
    }

    /// A template over the task's labels with these flags' verbalisers and separators.
    pub fn template(&self, template: &str, labels: &[String]) -> Result<PromptTemplate> {
        let mut t = PromptTemplate::new(template, labels, &self.verbalizers()?)?;
        t.separator = self.separator.replace("\\n", "\n").replace("\\t", "\t");
        t.instruction = self.instruction.as_ref().map(|i| i.replace("\\n", "\n"));
        Ok(t)
    }

    fn selection(&self) -> Selection {
        match self.select {
            SelectArg::Random => Selection::Random,
            SelectArg::Balanced => Selection::Balanced,
            SelectArg::Nearest => Selection::Nearest,
        }
    }
}

/// The demonstration pool (the training part), with embeddings for nearest neighbours.
pub struct DemoSource<'a> {
    pub pool: Pool<'a>,
    pool_vectors: Vec<f32>,
    width: usize,
    encoder: Option<(Model, String)>,
    /// Seed of random and balanced demonstration choices.
    seed: u64,
}

impl<'a> DemoSource<'a> {
    /// Reads the pool from `task`'s training part; loads the encoder for nearest neighbours.
    pub fn new(task: &'a TaskData, args: &IclArgs, seed: u64, bar: &Bar) -> Result<Self> {
        let pool = Pool {
            texts: task.texts_of(&task.train),
            labels: task.labels_of(&task.train),
        };
        let mut me = Self {
            pool,
            pool_vectors: Vec::new(),
            width: 0,
            encoder: None,
            seed,
        };
        if matches!(args.select, SelectArg::Nearest) && args.shots > 0 {
            let name = args.encoder.as_ref().context(
                "--select nearest needs --encoder MODEL (an embedding model, e.g. MiniLM)",
            )?;
            let path = tuna_models::resolve_model(name)?;
            let model = tuna_models::load_model(&path, &tuna_core::pick_device("cpu")?)
                .with_context(|| format!("loading encoder {name}"))?;
            let fp = model_fingerprint(&path)?;
            me.encoder = Some((model, fp));
            let texts: Vec<String> = me.pool.texts.iter().map(|s| s.to_string()).collect();
            let emb = me.embed(&texts, bar)?;
            me.width = emb.cols;
            me.pool_vectors = emb.data;
        }
        Ok(me)
    }

    fn embed(&self, texts: &[String], bar: &Bar) -> Result<tuna_train::embedder::Embeddings> {
        let (model, fp) = self.encoder.as_ref().context("no encoder loaded")?;
        let opts = EmbedOptions {
            pooling: model.info.family.default_pooling(),
            max_len: 256,
            batch_size: 32,
            normalize: true,
        };
        let cache = EmbeddingCache::new(default_cache_dir());
        Ok(embed_cached(model, fp, texts, &opts, Some(&cache), bar)?.0)
    }

    /// Classifies `part` of `task`; returns predictions, gold labels and metrics.
    pub fn run(
        &mut self,
        model: &Model,
        template: &PromptTemplate,
        task: &TaskData,
        part: &Part,
        args: &IclArgs,
        bar: &Bar,
    ) -> Result<(Vec<IclPrediction>, Vec<usize>, Metrics)> {
        let mut texts = task.texts_of(part);
        let mut gold = task.labels_of(part);
        if let Some(n) = args.limit {
            // Drawn by class, seeded: the first N rows of a file sorted by label are one class.
            let keep = tuna_data::stratified_subset(&gold, n, self.seed);
            texts = keep.iter().map(|&i| texts[i]).collect();
            gold = keep.iter().map(|&i| gold[i]).collect();
        }
        let vectors = if self.encoder.is_some() {
            let owned: Vec<String> = texts.iter().map(|s| s.to_string()).collect();
            let emb = self.embed(&owned, bar)?;
            Some(
                (0..emb.rows)
                    .map(|i| emb.row(i).to_vec())
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        };
        let labels = task.labels.labels().to_vec();
        let mut picker = DemoPicker::new(
            args.selection(),
            args.shots,
            self.seed,
            &self.pool.labels,
            labels.len(),
        )?;
        if self.encoder.is_some() {
            picker = picker.with_vectors(&mut self.pool_vectors, self.width)?;
        }
        let settings = IclSettings {
            length_normalise: !args.no_length_norm,
            calibrate: args.calibrate,
            queries_per_batch: args.batch_size,
        };
        let clf = IclClassifier::new(model, template, &labels, settings)?;
        bar.start("scoring", texts.len() as u64);
        let mut done = 0;
        let preds = clf.classify(&texts, &self.pool, &picker, vectors.as_deref(), &mut |n| {
            bar.advance((n - done) as u64);
            done = n;
        })?;
        bar.finish();
        let pred: Vec<usize> = preds.iter().map(|p| p.prediction).collect();
        let metrics = evaluate(&gold, &pred, &task.labels);
        Ok((preds, gold, metrics))
    }
}

#[derive(Args)]
pub struct IclCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Template of one example, with {text} and then {label} ({labels} lists the label words);
    /// `\n` written as two characters is a newline.
    #[arg(long, conflicts_with = "prompt_file")]
    template: Option<String>,
    /// A prompt file saved by `tuna prompt-search` (template, verbalisers, separator).
    #[arg(long)]
    prompt_file: Option<PathBuf>,
    #[command(flatten)]
    icl: IclArgs,
    /// Evaluate on the validation part instead of the test part.
    #[arg(long)]
    on_val: bool,
    /// Write every query's prompt, label continuations and scores here (JSON lines).
    #[arg(long)]
    dump: Option<PathBuf>,
}

impl IclCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let started = Instant::now();
        let (task, _) = self.data.load(out)?;
        let labels = task.labels.labels().to_vec();
        let template = match (&self.template, &self.prompt_file) {
            (_, Some(p)) => {
                let t = PromptTemplate::load(p)?;
                t.check_labels(&labels)?;
                t
            }
            (Some(t), None) => self.icl.template(t, &labels)?,
            (None, None) => {
                bail!("give --template '...{{text}}...{{label}}' or --prompt-file FILE")
            }
        };
        let part = match (&task.test, self.on_val) {
            (Some(t), false) => t.clone(),
            _ => task.val.clone(),
        };
        let part_name = if task.test.is_some() && !self.on_val {
            "test"
        } else {
            "validation"
        };
        let (model, _) = self.model.load()?;
        let bar = out.bar();
        let t0 = Instant::now();
        let mut demos = DemoSource::new(&task, &self.icl, self.data.seed, &bar)?;
        let (preds, gold, metrics) = demos.run(&model, &template, &task, &part, &self.icl, &bar)?;
        let secs = t0.elapsed().as_secs_f64();
        if let Some(path) = &self.dump {
            write_dump(path, &preds, &gold, &labels, self.icl.calibrate)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let majority = majority_share(&gold, labels.len());
        out.line(format!(
            "{}-shot ({}) on {part_name} (n={}): accuracy {:.2}%, macro-F1 {:.2}% (majority class {:.2}%), {secs:.0}s",
            self.icl.shots,
            select_name(&self.icl),
            metrics.n,
            100.0 * metrics.accuracy,
            100.0 * metrics.macro_f1,
            100.0 * majority,
        ));
        out.line(metrics.confusion_markdown());
        let mut result = json!({
            "ok": true, "command": "icl", "part": part_name, "shots": self.icl.shots,
            "select": select_name(&self.icl), "calibrate": self.icl.calibrate,
            "template": template, "metrics": metrics, "majority_accuracy": majority, "seconds": secs,
            // As a training run reports them, for `tuna compare`.
            "trainable_parameters": 0, "total_seconds": started.elapsed().as_secs_f64(),
            "peak_rss_bytes": tuna_train::finetune::peak_rss_bytes(),
        });
        result[part_name] = json!(metrics);
        out.result(result);
        Ok(())
    }
}

/// Name of the selection, for reports.
pub fn select_name(args: &IclArgs) -> &'static str {
    match args.select {
        SelectArg::Random => "random",
        SelectArg::Balanced => "balanced",
        SelectArg::Nearest => "nearest",
    }
}

/// Share of the most frequent gold label.
pub fn majority_share(gold: &[usize], n_labels: usize) -> f64 {
    let mut counts = vec![0usize; n_labels];
    gold.iter().for_each(|&g| counts[g] += 1);
    *counts.iter().max().unwrap_or(&0) as f64 / gold.len().max(1) as f64
}

fn write_dump(
    path: &std::path::Path,
    preds: &[IclPrediction],
    gold: &[usize],
    labels: &[String],
    calibrate: bool,
) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (i, (p, g)) in preds.iter().zip(gold).enumerate() {
        let line = json!({
            "index": i, "prompt": p.prompt, "continuations": p.continuations, "scores": p.scores,
            "prediction": labels[p.prediction], "gold": labels[*g], "labels": labels, "demos": p.demos,
            "calibrated": calibrate, "content_free_prompt": p.content_free_prompt,
        });
        writeln!(f, "{line}")?;
    }
    f.flush()?;
    Ok(())
}
