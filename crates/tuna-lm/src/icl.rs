//! In-context classification: each query gets a k-shot prompt, and the label whose verbalised
//! word the causal LM finds most likely (mean log-probability per token, optionally calibrated
//! against a content-free input) is the prediction. No text is parsed.

use crate::demos::DemoPicker;
use crate::score::{Candidate, Scorer};
use crate::template::PromptTemplate;
use serde::Serialize;
use tuna_core::Result;
use tuna_models::{Model, TextTokenizer};

/// The content-free input of calibration (Zhao et al., 2021).
pub const CONTENT_FREE: &str = "N/A";

/// How queries are scored.
#[derive(Debug, Clone)]
pub struct IclSettings {
    /// Divide each label's log-probability by its number of tokens.
    pub length_normalise: bool,
    /// Subtract each label's score on the content-free input with the same demonstrations.
    pub calibrate: bool,
    /// Queries scored per forward pass (times the number of labels, twice with calibration).
    pub queries_per_batch: usize,
}

impl Default for IclSettings {
    fn default() -> Self {
        Self {
            length_normalise: true,
            calibrate: false,
            queries_per_batch: 4,
        }
    }
}

/// The labelled examples demonstrations come from.
pub struct Pool<'a> {
    pub texts: Vec<&'a str>,
    pub labels: Vec<usize>,
}

/// The outcome for one query.
#[derive(Debug, Clone, Serialize)]
pub struct IclPrediction {
    /// Predicted class index.
    pub prediction: usize,
    /// Per class, the score compared (higher is more likely).
    pub scores: Vec<f64>,
    /// The prompt the label words follow.
    pub prompt: String,
    /// Per class, the text scored after the prompt.
    pub continuations: Vec<String>,
    /// Pool indices of the demonstrations.
    pub demos: Vec<usize>,
    /// With calibration: the content-free prompt whose label scores were subtracted.
    pub content_free_prompt: Option<String>,
}

/// Classifies texts with a causal LM and a prompt.
pub struct IclClassifier<'a> {
    scorer: Scorer<'a>,
    tok: &'a TextTokenizer,
    template: &'a PromptTemplate,
    labels: &'a [String],
    settings: IclSettings,
}

impl<'a> IclClassifier<'a> {
    /// `labels`: the class names in label-map order.
    pub fn new(
        model: &'a Model,
        template: &'a PromptTemplate,
        labels: &'a [String],
        settings: IclSettings,
    ) -> Result<Self> {
        template.check_labels(labels)?;
        let mut scorer = Scorer::new(model)?;
        scorer.batch_size =
            settings.queries_per_batch.max(1) * if settings.calibrate { 2 } else { 1 };
        Ok(Self {
            scorer,
            tok: &model.tokenizer,
            template,
            labels,
            settings,
        })
    }

    /// Predictions for `queries`; `vectors` holds each query's embedding when `picker` selects
    /// nearest neighbours. `progress` gets the number of queries done so far.
    pub fn classify(
        &self,
        queries: &[&str],
        pool: &Pool,
        picker: &DemoPicker,
        vectors: Option<&[Vec<f32>]>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<IclPrediction>> {
        let n_labels = self.labels.len();
        let per_query = if self.settings.calibrate {
            2 * n_labels
        } else {
            n_labels
        };
        let mut out = Vec::with_capacity(queries.len());
        let step = self.settings.queries_per_batch.max(1);
        for start in (0..queries.len()).step_by(step) {
            let end = (start + step).min(queries.len());
            let mut candidates = Vec::with_capacity((end - start) * per_query);
            let mut pending = Vec::with_capacity(end - start);
            for (q, text) in queries.iter().enumerate().take(end).skip(start) {
                let demo_ids = picker.pick(q, vectors.map(|v| v[q].as_slice()))?;
                let demos: Vec<(&str, &str)> = demo_ids
                    .iter()
                    .map(|&i| (pool.texts[i], self.labels[pool.labels[i]].as_str()))
                    .collect();
                let query = self.template.query(text, &demos, self.labels);
                candidates.extend(self.candidates(&query.prompt, &query.continuations)?);
                let mut cf_prompt = None;
                if self.settings.calibrate {
                    let cf = self.template.query(CONTENT_FREE, &demos, self.labels);
                    candidates.extend(self.candidates(&cf.prompt, &cf.continuations)?);
                    cf_prompt = Some(cf.prompt);
                }
                pending.push((query, demo_ids, cf_prompt));
            }
            let scores = self.scorer.score(&candidates)?;
            for (i, (query, demos, content_free_prompt)) in pending.into_iter().enumerate() {
                let s = &scores[i * per_query..(i + 1) * per_query];
                let value = |ll: &crate::score::LogLikelihood| {
                    if self.settings.length_normalise {
                        ll.mean()
                    } else {
                        ll.sum
                    }
                };
                let scores: Vec<f64> = (0..n_labels)
                    .map(|j| {
                        let v = value(&s[j]);
                        if self.settings.calibrate {
                            v - value(&s[n_labels + j])
                        } else {
                            v
                        }
                    })
                    .collect();
                out.push(IclPrediction {
                    prediction: argmax(&scores),
                    scores,
                    prompt: query.prompt,
                    continuations: query.continuations,
                    demos,
                    content_free_prompt,
                });
            }
            progress(end);
        }
        Ok(out)
    }

    fn candidates(&self, prompt: &str, continuations: &[String]) -> Result<Vec<Candidate>> {
        let context = self.tok.encode(prompt, usize::MAX)?;
        continuations
            .iter()
            .map(|c| {
                Ok(Candidate {
                    context: context.clone(),
                    continuation: self.tok.encode_raw(c)?,
                })
            })
            .collect()
    }
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
