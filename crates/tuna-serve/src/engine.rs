//! The loaded models and what the worker thread does with them: generation (plain prompts or
//! chat messages through the model's chat template), embeddings and classification. Built once
//! at start; every forward pass runs on the worker thread, never on the async runtime.

use crate::catalog::{Catalog, Entry, Kind};
use std::path::Path;
use tuna_core::Error;
use tuna_lm::{stop_token_ids, ChatTemplate, GenerateConfig, Generation, Generator, Message};
use tuna_models::Model;
use tuna_train::embedder::{embed_texts, EmbedOptions, Embeddings};
use tuna_train::predict::{Prediction, Predictor};
use tuna_train::progress::Silent;

use crate::lm_adapter::{share_weights, with_lm_adapter};
use crate::request::GenParams;

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// A plain prompt, tokenized as `tuna generate` does.
    Text(String),
    /// Messages rendered with the model's chat template, as `tuna generate --chat` does.
    Chat(Vec<Message>),
}

/// A served causal LM or encoder.
struct Served {
    id: String,
    model: Model,
    /// The model's chat template, or why there is none (no template, or one that does not
    /// compile), for the error of a chat request.
    template: Result<ChatTemplate, String>,
}

/// Everything the server runs.
pub struct Engine {
    models: Vec<Served>,
    classifiers: Vec<(String, Predictor)>,
}

/// Called when `on_text` stops a generation on purpose.
pub const STOPPED: &str = "generation stopped by the server";

impl Engine {
    /// The base model (loaded from `path`), served as `name`.
    pub fn new(name: &str, model: Model) -> Self {
        let template = chat_template(&model);
        Self {
            models: vec![Served {
                id: name.into(),
                model,
                template,
            }],
            classifiers: vec![],
        }
    }

    /// Serves the adapter of `adapter` (a PEFT folder or a run with one) on the base model as
    /// `BASE:name`. The base's files at `base_path` are loaded once more, their weights replaced
    /// by the base's own (so they are held once), and the adapter attached.
    pub fn add_adapter(
        &mut self,
        name: &str,
        base_path: &Path,
        adapter: &Path,
    ) -> Result<(), Error> {
        let base = &mut self.models[0];
        let mut twin = tuna_models::load_model(base_path, &base.model.device)?;
        let shared = share_weights(&mut base.model, &mut twin)?;
        tracing::info!(adapter = name, shared, "adapter shares the base weights");
        let model = with_lm_adapter(twin, adapter)?;
        let id = format!("{}:{name}", base.id);
        let template = chat_template(&model);
        self.models.push(Served {
            id,
            model,
            template,
        });
        Ok(())
    }

    /// Serves the classification run in `run` as `name` (on the model the run records).
    pub fn add_classifier(&mut self, name: &str, run: &Path) -> Result<(), Error> {
        let device = self.models[0].model.device.clone();
        let p = Predictor::load(run, None, &device)
            .map_err(|e| Error::Invalid(format!("loading the run {}: {e}", run.display())))?;
        self.classifiers.push((name.into(), p));
        Ok(())
    }

    /// The served names.
    pub fn catalog(&self) -> Catalog {
        let mut entries: Vec<Entry> = self
            .models
            .iter()
            .enumerate()
            .map(|(i, s)| Entry {
                id: s.id.clone(),
                kind: if i == 0 { Kind::Base } else { Kind::Adapter },
                causal: s.model.causal_lm().is_ok(),
            })
            .collect();
        entries.extend(self.classifiers.iter().map(|(n, _)| Entry {
            id: n.clone(),
            kind: Kind::Classifier,
            causal: false,
        }));
        Catalog { entries }
    }

    fn served(&self, id: &str) -> Result<&Served, Error> {
        self.models
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Error::Invalid(format!("no model `{id}`")))
    }

    /// Generates from `prompt` with model `id`, handing each piece of text to `on_text` (which
    /// stops the generation by returning an error).
    pub fn generate(
        &self,
        id: &str,
        prompt: &Prompt,
        p: &GenParams,
        on_text: &mut dyn FnMut(&str) -> tuna_core::Result<()>,
    ) -> Result<Generation, Error> {
        let s = self.served(id)?;
        let gen = Generator::new(&s.model)?;
        let tok = gen.tokenizer();
        let ids = match prompt {
            Prompt::Text(t) => tok.encode(t, usize::MAX)?,
            Prompt::Chat(msgs) => {
                let t = s.template.as_ref().map_err(|why| {
                    Error::Invalid(format!(
                        "`{id}` cannot chat: {why}; use /v1/completions with a plain prompt"
                    ))
                })?;
                tok.encode_raw(&t.render(msgs, true)?)?
            }
        };
        let cfg = GenerateConfig {
            max_new_tokens: p.max_tokens,
            sampling: p.sampling.clone(),
            stop_strings: p.stop.clone(),
            stop_tokens: if p.ignore_eos {
                vec![]
            } else {
                stop_token_ids(tok)
            },
        };
        gen.generate(&ids, &cfg, on_text)
    }

    /// Pooled embeddings of `texts` with model `id`, as `tuna embed` makes them (the family's
    /// default pooling, 256 tokens at most, not normalised); and the tokens they took.
    pub fn embed(&self, id: &str, texts: &[String]) -> Result<(Embeddings, usize), Error> {
        let s = self.served(id)?;
        let opts = EmbedOptions {
            pooling: s.model.info.family.default_pooling(),
            max_len: 256,
            batch_size: 32,
            normalize: false,
        };
        let tokens = texts
            .iter()
            .map(|t| s.model.encode(t, opts.max_len).map(|ids| ids.len()))
            .sum::<Result<usize, _>>()?;
        let emb = embed_texts(&s.model, texts, &opts, &Silent)?;
        Ok((emb, tokens))
    }

    /// Labels of `texts` by the classification run `id`, with the run's label names.
    pub fn classify(
        &self,
        id: &str,
        texts: &[String],
    ) -> Result<(Vec<Prediction>, Vec<String>), Error> {
        let (_, p) = self
            .classifiers
            .iter()
            .find(|(n, _)| n == id)
            .ok_or_else(|| Error::Invalid(format!("no classification run `{id}`")))?;
        let preds = p.predict(texts, &Silent).map_err(train_error)?;
        Ok((preds, p.labels.labels().to_vec()))
    }
}

/// The model's chat template, or why it has none usable (logged once, at start).
fn chat_template(model: &Model) -> Result<ChatTemplate, String> {
    ChatTemplate::from_tokenizer(&model.tokenizer).map_err(|e| {
        tracing::info!(model = %model.info.source.display(), "no chat: {e}");
        e.to_string()
    })
}

/// tuna-train's error as tuna-core's (input errors stay input errors).
fn train_error(e: tuna_train::Error) -> Error {
    match e {
        tuna_train::Error::Core(c) => c,
        tuna_train::Error::Invalid(m) => Error::Invalid(m),
        other => Error::Invalid(other.to_string()),
    }
}
