//! `tuna train`: adapt a model to labelled data with one method, evaluate it, and keep the run.

use crate::args::{DataArgs, EmbedArgs, ModelArgs};
use crate::commands::finetune::{report, run_finetune, summary, FinetuneArgs, RUNS};
use crate::output::Output;
use anyhow::Result;
use clap::builder::PossibleValuesParser;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tuna_adapt::MethodName;
use tuna_classic::{ClassifierConfig, ClassifierKind};
use tuna_train::features::{train_features, FeatureConfig, FeatureOutcome};
use tuna_train::run::{DataRecord, RunConfig, RunWriter};
use tuna_train::run_model::relative_to_run;

#[derive(Args)]
pub struct TrainCmd {
    /// The adaptation method: features (frozen model -> cached embeddings -> classical
    /// classifier), head (new output layer; --unfreeze-last N also trains the last N blocks),
    /// full, lora, dora (LoRA with a magnitude per row), ia3 (learned rescaling of keys, values
    /// and the feed-forward input), adapter (bottlenecks after attention and feed-forward),
    /// prefix (key/value prefixes in every layer) or prompt (virtual-token embeddings).
    #[arg(long, default_value = "features", value_parser = method_names())]
    method: String,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    embed: EmbedArgs,
    /// Classifier on the features: logreg, svm or forest.
    #[arg(long, default_value = "logreg")]
    classifier: ClassifierKind,
    /// Regularisation C of logreg/svm (larger = weaker); default: the best on validation of
    /// 0.01..100, widened by factors of 10 (to 1e-4..1e4) while the best is at an edge.
    #[arg(long)]
    c: Option<f64>,
    /// Fit logreg/svm on the raw features instead of standardised ones.
    #[arg(long)]
    no_standardize: bool,
    /// Trees of the random forest.
    #[arg(long, default_value_t = 100)]
    trees: usize,
    /// Deepest a forest tree may grow (default: unlimited).
    #[arg(long)]
    max_depth: Option<usize>,
    /// Run directory to create (default: a new one, runs/<method>-<UTC date>-<time>, with -2,
    /// -3, ... for runs started in the same second). Needed with --resume.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Replace the run directory if it exists and tuna wrote it (it holds tuna's .tuna-run
    /// marker, or a config.json of an earlier tuna run); any other folder is left alone.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    finetune: FinetuneArgs,
}

impl TrainCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let Some(kind) = MethodName::parse(&self.method) else {
            return self.run_features(out);
        };
        let max_len = self.embed.max_len.unwrap_or(128);
        run_finetune(
            out,
            kind,
            &self.model,
            &self.data,
            &self.finetune,
            self.embed.pooling,
            max_len,
            self.out.as_deref(),
            self.overwrite,
        )
    }

    /// `--method features`: embeds the texts with the frozen model, fits the classifier on the
    /// embeddings, saves the run and reports it.
    fn run_features(self, out: &Output) -> Result<()> {
        let (data, spec) = self.data.load(out)?;
        out.line(format!("data: {}", data.summary()));
        let (model, fp) = self.model.load()?;
        out.line(format!(
            "model: {} ({:?}, {} layers, hidden {}, {:.1}M parameters, all frozen)",
            self.model.model,
            model.info.family,
            model.info.num_layers,
            model.info.hidden_size,
            model.info.parameters as f64 / 1e6
        ));
        let cfg = FeatureConfig {
            embed: self.embed.options(&model)?,
            classifier: ClassifierConfig {
                kind: self.classifier,
                c: self.c,
                standardize: !self.no_standardize,
                n_trees: self.trees,
                max_depth: self.max_depth,
                seed: self.data.seed,
            },
        };
        let writer = match &self.out {
            Some(dir) => RunWriter::create(dir, self.overwrite)?,
            None => {
                RunWriter::create_new(Path::new(RUNS), &format!("features-{}", self.classifier))?
            }
        };
        let t0 = Instant::now();
        let bar = out.bar();
        let cache = self.embed.cache();
        let res = train_features(&model, &fp, &data, &cfg, cache.as_ref(), &bar)?;
        let total = t0.elapsed().as_secs_f64();
        for (c, acc) in &res.c_scores {
            out.line(format!(
                "  C={c:<6} validation accuracy {:.2}%",
                acc * 100.0
            ));
        }
        if let Some(w) = tuna_classic::edge_warning(&res.c_scores) {
            out.line(format!("warning: {w}"));
        }
        let record = RunConfig {
            tuna_version: env!("CARGO_PKG_VERSION").into(),
            method: "features".into(),
            // Absolute, so that `tuna predict` works from any folder.
            model: std::fs::canonicalize(&model.info.source)
                .unwrap_or_else(|_| model.info.source.clone()),
            model_from_run: relative_to_run(&model.info.source, writer.dir()),
            model_fingerprint: fp,
            features: Some(cfg.clone()),
            finetune: None,
            data: DataRecord::of(&data, &spec),
        };
        let metrics = features_metrics(&res, total, model.info.parameters);
        writer.json("config.json", &record)?;
        data.labels.save(&writer.path("labels.json"))?;
        res.classifier.save(&writer.path("classifier.json"))?;
        writer.json("metrics.json", &metrics)?;
        let dir = writer.commit()?;
        report_features(out, self.classifier, &res, total, &dir);
        Ok(())
    }
}

/// What `metrics.json` of a features run holds.
fn features_metrics(res: &FeatureOutcome, total: f64, model_parameters: usize) -> Value {
    json!({
        "validation": res.val,
        "test": res.test,
        "c_selection": res.c_scores,
        "embed_seconds": res.embed_seconds,
        "fit_seconds": res.fit_seconds,
        "total_seconds": total,
        "embeddings_from_cache": res.cache_hits,
        "trainable_parameters": res.classifier.n_parameters(),
        "model_parameters": model_parameters,
        "peak_rss_bytes": tuna_train::finetune::peak_rss_bytes(),
    })
}

/// Prints the scores of a saved features run and its result line.
fn report_features(
    out: &Output,
    classifier: ClassifierKind,
    res: &FeatureOutcome,
    total: f64,
    dir: &Path,
) {
    report(out, "validation", &res.val);
    if let Some(t) = &res.test {
        report(out, "test", t);
        out.line(t.confusion_markdown());
    }
    out.line(format!(
        "embedding {:.1}s{}, fitting {:.1}s; run saved in {}",
        res.embed_seconds,
        if res.cache_hits > 0 {
            " (cache used)"
        } else {
            ""
        },
        res.fit_seconds,
        dir.display()
    ));
    out.result(json!({
        "ok": true, "command": "train", "method": "features", "classifier": classifier,
        "run": dir, "validation": summary(&res.val), "test": res.test.as_ref().map(summary),
        "c_selection": res.c_scores, "embed_seconds": res.embed_seconds,
        "fit_seconds": res.fit_seconds, "total_seconds": total,
        "trainable_parameters": res.classifier.n_parameters(),
        "peak_rss_bytes": tuna_train::finetune::peak_rss_bytes(),
    }));
}

/// `features` and every finetuning method's name.
fn method_names() -> PossibleValuesParser {
    let names = std::iter::once("features").chain(MethodName::ALL.iter().map(|m| m.as_str()));
    PossibleValuesParser::new(names)
}
