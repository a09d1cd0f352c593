//! Labelling new texts with a finished run.

use crate::cache::model_fingerprint;
use crate::embedder::embed_texts;
use crate::features::features;
use crate::finetune::{load_finetuned, TaskModel};
use crate::progress::Progress;
use crate::run::{read_run_config, RunConfig};
use crate::run_model::RunModel;
use crate::Result;
use candle_core::Device;
use serde::Serialize;
use std::path::Path;
use tuna_classic::Classifier;
use tuna_data::LabelMap;
use tuna_models::{load_model, Model};

/// One prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub label: String,
    /// Probability of `label` (for the SVM: softmax of decision values).
    pub confidence: f32,
    /// Probability of every label, in label-map order.
    pub probabilities: Vec<f32>,
}

/// What a run predicts with.
enum Method {
    Features(Box<(Classifier, Model)>),
    Finetuned(Box<TaskModel>),
}

/// A loaded run, ready to predict.
pub struct Predictor {
    pub config: RunConfig,
    pub labels: LabelMap,
    /// The model it runs on, and how that was found.
    pub model: RunModel,
    method: Method,
}

impl Predictor {
    /// Loads the run in `dir` and its model (from `model` if given, else the one the run
    /// records, found from the run directory: [`crate::run_model`]).
    pub fn load(dir: &Path, model: Option<&Path>, device: &Device) -> Result<Self> {
        let config = read_run_config(dir)?;
        let labels = LabelMap::load(&dir.join("labels.json"))?;
        let found = config.find_model(dir, model)?;
        let model_path = found.path.as_path();
        if model_fingerprint(model_path)? != config.model_fingerprint {
            tracing::warn!(model = %model_path.display(), "model files differ from the ones the run was trained with");
        }
        let method = match &config.finetune {
            Some(ft) => Method::Finetuned(Box::new(load_finetuned(
                dir,
                ft,
                labels.len(),
                model_path,
                device,
            )?)),
            None => Method::Features(Box::new((
                Classifier::load(&dir.join("classifier.json"))?,
                load_model(model_path, device)?,
            ))),
        };
        Ok(Self {
            config,
            labels,
            model: found,
            method,
        })
    }

    /// Labels `texts`.
    pub fn predict(&self, texts: &[String], progress: &dyn Progress) -> Result<Vec<Prediction>> {
        let probs = match (&self.method, &self.config.features) {
            (Method::Features(cm), Some(fcfg)) => {
                let (classifier, model) = (&cm.0, &cm.1);
                let emb = embed_texts(model, texts, &fcfg.embed, progress)?;
                classifier.predict_proba(&features(&emb)?)?
            }
            (Method::Finetuned(tm), _) => {
                let max_len = self
                    .config
                    .finetune
                    .as_ref()
                    .map_or(128, |f| f.train.max_len);
                tm.predict_texts(texts, max_len, progress)?
            }
            _ => return Err(crate::Error::Invalid("run without method settings".into())),
        };
        Ok(probs
            .into_iter()
            .map(|p| {
                let (best, &conf) = p
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap_or((0, &0.0));
                Prediction {
                    label: self.labels.name(best).to_string(),
                    confidence: conf,
                    probabilities: p,
                }
            })
            .collect())
    }
}
