//! The feature-based method: a frozen model embeds every text once (cached), and a classical
//! classifier (logistic regression, linear SVM or random forest) is fitted on the embeddings.

use crate::cache::{embed_cached, EmbeddingCache};
use crate::embedder::{EmbedOptions, Embeddings};
use crate::progress::Progress;
use crate::task_data::{Part, TaskData};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tuna_classic::{Classifier, ClassifierConfig, Features};
use tuna_data::{evaluate, Metrics};
use tuna_models::Model;

/// Settings of the feature-based method.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureConfig {
    /// How texts become vectors.
    pub embed: EmbedOptions,
    /// The classifier fitted on them.
    pub classifier: ClassifierConfig,
}

/// What a feature-based run produced.
pub struct FeatureOutcome {
    pub classifier: Classifier,
    /// `(C, validation accuracy)` of every value tried.
    pub c_scores: Vec<(f64, f64)>,
    pub val: Metrics,
    pub test: Option<Metrics>,
    /// Seconds spent embedding (0 when every source came from the cache).
    pub embed_seconds: f64,
    /// Seconds spent fitting the classifier (all values of C).
    pub fit_seconds: f64,
    /// Sources whose embeddings came from the cache.
    pub cache_hits: usize,
}

/// Embeds the task's sources and fits and evaluates the classifier.
pub fn train_features(
    model: &Model,
    model_fp: &str,
    data: &TaskData,
    cfg: &FeatureConfig,
    cache: Option<&EmbeddingCache>,
    progress: &dyn Progress,
) -> Result<FeatureOutcome> {
    let t0 = Instant::now();
    let mut embedded = Vec::with_capacity(data.sources.len());
    let mut cache_hits = 0;
    for src in &data.sources {
        let texts: Vec<String> = src.examples.iter().map(|e| e.text.clone()).collect();
        let (emb, hit) = embed_cached(model, model_fp, &texts, &cfg.embed, cache, progress)?;
        cache_hits += usize::from(hit);
        embedded.push(emb);
    }
    let embed_seconds = if cache_hits == data.sources.len() {
        0.0
    } else {
        t0.elapsed().as_secs_f64()
    };
    let rows = |p: &Part| embedded[p.source].select(&p.rows);
    let (train_x, val_x) = (rows(&data.train), rows(&data.val));
    let (train_y, val_y) = (data.labels_of(&data.train), data.labels_of(&data.val));
    let t1 = Instant::now();
    progress.start("fitting classifier", 0);
    let (classifier, c_scores) = Classifier::fit_select(
        &features(&train_x)?,
        &train_y,
        &features(&val_x)?,
        &val_y,
        data.labels.len(),
        &cfg.classifier,
    )?;
    progress.finish();
    let fit_seconds = t1.elapsed().as_secs_f64();
    let score = |x: &Embeddings, gold: &[usize]| -> Result<Metrics> {
        let pred = classifier.predict(&features(x)?)?;
        Ok(evaluate(gold, &pred, &data.labels))
    };
    let val = score(&val_x, &val_y)?;
    let test = match &data.test {
        Some(p) => Some(score(&rows(p), &data.labels_of(p))?),
        None => None,
    };
    Ok(FeatureOutcome {
        classifier,
        c_scores,
        val,
        test,
        embed_seconds,
        fit_seconds,
        cache_hits,
    })
}

/// Views embeddings as classifier features.
pub fn features(e: &Embeddings) -> Result<Features<'_>> {
    Ok(Features::new(&e.data, e.rows, e.cols)?)
}
