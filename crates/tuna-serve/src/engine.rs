//! The loaded models and what the worker thread does with them: generation (plain prompts or
//! chat messages through the model's chat template), embeddings and classification; adapters
//! added and removed at run time (`/admin/adapters`). Every forward pass and every load runs on
//! the worker thread, never on the async runtime.

use crate::catalog::{Catalog, Entry, Kind};
use crate::error::ApiError;
use std::path::{Path, PathBuf};
use tuna_core::Error;
use tuna_lm::RowEvent;
use tuna_lm::{stop_token_ids, ChatTemplate, DecodeBatch, GenerateConfig, Generator, Message};
use tuna_models::{Model, VirtualTokens};
use tuna_train::embedder::{embed_texts, EmbedOptions, Embeddings};
use tuna_train::predict::{Prediction, Predictor};
use tuna_train::progress::Silent;

use crate::lm_adapter::{share_weights, with_lm_adapter, AdaptedLm};
use crate::mix::{self, Deltas};
use crate::request::GenParams;

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// A plain prompt, tokenized as `tuna generate` does.
    Text(String),
    /// Messages rendered with the model's chat template, as `tuna generate --chat` does.
    Chat(Vec<Message>),
}

impl Prompt {
    /// The request field it came from.
    fn param(&self) -> &'static str {
        match self {
            Prompt::Text(_) => "prompt",
            Prompt::Chat(_) => "messages",
        }
    }
}

/// A served causal LM or encoder.
struct Served {
    id: String,
    model: Model,
    /// An input adapter's virtual tokens (prefix or prompt tuning), run before every prompt.
    virt: Option<VirtualTokens>,
    /// The model's chat template, or why there is none (no template, or one that does not
    /// compile), for the error of a chat request.
    template: Result<ChatTemplate, String>,
    /// Whether its rows decode in the base model's batch, and its layers' deltas there.
    mixes: bool,
    deltas: Deltas,
}

/// Everything the server runs.
pub struct Engine {
    /// The base model first, then its adapters.
    models: Vec<Served>,
    /// Where the base model was loaded from (each adapter loads its files once more).
    base_path: PathBuf,
    classifiers: Vec<(String, Predictor)>,
    /// The base once more (its weights shared) that decodes rows of different adapters
    /// together; made with the first adapter that mixes.
    mixer: Option<Model>,
}

impl Engine {
    /// The base model (loaded from `path`), served as `name`.
    pub fn new(name: &str, model: Model, path: &Path) -> Self {
        let template = chat_template(&model);
        Self {
            models: vec![Served {
                id: name.into(),
                model,
                virt: None,
                template,
                mixes: true,
                deltas: Deltas::new(),
            }],
            base_path: path.to_path_buf(),
            classifiers: vec![],
            mixer: None,
        }
    }

    /// The name an adapter called `name` is served as: `BASE:name`.
    pub fn adapter_id(&self, name: &str) -> String {
        format!("{}:{name}", self.models[0].id)
    }

    /// Serves the adapter of `adapter` (a PEFT folder or a run with one) on the base model as
    /// `BASE:name`, and returns that name. The base's files are loaded once more, their weights
    /// replaced by the base's own (so they are held once), and the adapter attached.
    pub fn add_adapter(&mut self, name: &str, adapter: &Path) -> Result<String, Error> {
        let id = self.adapter_id(name);
        if self.models.iter().any(|s| s.id == id) {
            return Err(Error::Invalid(format!("`{id}` is already served")));
        }
        let dir = crate::lm_adapter::adapter_dir(adapter)?;
        let base = &mut self.models[0];
        let mut twin = tuna_models::load_model(&self.base_path, &base.model.device)?;
        let shared = share_weights(&mut base.model, &mut twin)?;
        tracing::info!(adapter = name, shared, "adapter shares the base weights");
        let AdaptedLm {
            mut model,
            virt,
            mixes,
        } = with_lm_adapter(twin, &dir)?;
        let deltas = mix::deltas(&mut model)?;
        if mixes && self.mixer.is_none() {
            let base = &mut self.models[0];
            let mut mixer = tuna_models::load_model(&self.base_path, &base.model.device)?;
            share_weights(&mut base.model, &mut mixer)?;
            self.mixer = Some(mixer);
        }
        let template = chat_template(&model);
        self.models.push(Served {
            id: id.clone(),
            model,
            virt,
            template,
            mixes,
            deltas,
        });
        Ok(id)
    }

    /// Stops serving the adapter `id` (`BASE:NAME`) and frees its tensors (the base's stay).
    /// False when no adapter has that name.
    pub fn remove_adapter(&mut self, id: &str) -> bool {
        match self.models.iter().skip(1).position(|s| s.id == id) {
            Some(i) => {
                self.models.remove(i + 1);
                if !self.models.iter().skip(1).any(|s| s.mixes) {
                    self.mixer = None;
                }
                true
            }
            None => false,
        }
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

    /// What chat with sources needs of the base model; `None` for an encoder.
    pub fn grounding(&self) -> Option<crate::grounding::Grounding> {
        let m = &self.models[0].model;
        let lm = m.causal_lm().ok()?;
        Some(crate::grounding::Grounding {
            tokenizer: m.tokenizer.clone(),
            max_positions: lm.config().max_position_embeddings,
        })
    }

    /// The model `id`; 404 when it is not served (an adapter removed while a request for it
    /// waited).
    fn served(&self, id: &str) -> Result<&Served, ApiError> {
        self.models.iter().find(|s| s.id == id).ok_or_else(|| {
            let names: Vec<String> = self.models.iter().map(|s| s.id.clone()).collect();
            ApiError::unknown_model(id, &names)
        })
    }

    /// The token ids of every prompt for model `id`, checked before anything is generated: 400
    /// for a chat without a template, an empty prompt or one longer than the model's positions.
    pub fn prompt_ids(&self, id: &str, prompts: &[Prompt]) -> Result<Vec<Vec<u32>>, ApiError> {
        let s = self.served(id)?;
        let model_err = |e: Error| ApiError::from_model(&e);
        let max_pos = s
            .model
            .causal_lm()
            .map_err(model_err)?
            .config()
            .max_position_embeddings;
        let tok = &s.model.tokenizer;
        prompts
            .iter()
            .map(|prompt| {
                let ids = match prompt {
                    Prompt::Text(t) => tok.encode(t, usize::MAX).map_err(model_err)?,
                    Prompt::Chat(msgs) => {
                        let t = s.template.as_ref().map_err(|why| {
                            ApiError::invalid(
                                "model",
                                format!(
                                    "`{id}` cannot chat: {why}; use /v1/completions with a plain \
                                     prompt"
                                ),
                            )
                        })?;
                        let text = t.render(msgs, true).map_err(model_err)?;
                        tok.encode_raw(&text).map_err(model_err)?
                    }
                };
                let param = prompt.param();
                if ids.is_empty() {
                    return Err(ApiError::invalid(
                        param,
                        format!("the {param} makes no tokens: send some text"),
                    ));
                }
                if ids.len() >= max_pos {
                    return Err(ApiError::context_length(param, ids.len(), max_pos));
                }
                Ok(ids)
            })
            .collect()
    }

    /// The generator of model `id`: 404 when it is no longer served (an adapter removed while
    /// its requests were decoding).
    pub fn generator(&self, id: &str) -> Result<Generator<'_>, ApiError> {
        let s = self.served(id)?;
        let gen = Generator::new(&s.model).map_err(|e| ApiError::from_model(&e))?;
        Ok(gen.with_virtual_tokens(s.virt.clone()))
    }

    /// The decoding batch that rows of model `id` join: the base model's for the base and every
    /// adapter that mixes ([`crate::mix`]), its own for the others.
    pub fn batch_group(&self, id: &str) -> String {
        match self.served(id) {
            Ok(s) if s.mixes => self.models[0].id.clone(),
            _ => id.to_string(),
        }
    }

    /// Advances `batch` by one token, row `i` decoded by model `models[i]`: by that model when
    /// every row has the same, else by the mixer with each run of rows routed to its adapter.
    pub fn step<K: Copy + PartialEq>(
        &mut self,
        models: &[String],
        batch: &mut DecodeBatch<K>,
    ) -> Result<Vec<RowEvent<K>>, ApiError> {
        let model_err = |e: Error| ApiError::from_model(&e);
        let runs = mix::runs(models);
        if runs.len() <= 1 {
            let id = runs.first().map_or(self.models[0].id.as_str(), |r| r.0);
            return batch.step(&self.generator(id)?).map_err(model_err);
        }
        for (id, _) in &runs {
            self.served(id)?;
        }
        let routes: Vec<(usize, Option<&Deltas>)> = runs
            .iter()
            .map(|(id, n)| {
                let s = self.models.iter().find(|s| s.id == *id);
                (*n, s.map(|s| &s.deltas).filter(|d| !d.is_empty()))
            })
            .collect();
        let Some(mixer) = self.mixer.as_mut() else {
            return Err(model_err(Error::Invalid(
                "rows of several models in one batch, and no mixer".into(),
            )));
        };
        mix::route(mixer, &routes).map_err(model_err)?;
        let gen = Generator::new(mixer).map_err(model_err)?;
        batch.step(&gen).map_err(model_err)
    }

    /// What [`Generator::generate`] needs of a request's settings `p`, for model `id`.
    pub fn generate_config(&self, id: &str, p: &GenParams) -> Result<GenerateConfig, ApiError> {
        let s = self.served(id)?;
        Ok(GenerateConfig {
            max_new_tokens: p.max_tokens,
            sampling: p.sampling.clone(),
            stop_strings: p.stop.clone(),
            stop_tokens: if p.ignore_eos {
                vec![]
            } else {
                stop_token_ids(&s.model.tokenizer)
            },
        })
    }

    /// Pooled embeddings of `texts` with model `id`, as `tuna embed` makes them (the family's
    /// default pooling, 256 tokens at most, not normalised); and the tokens each text took.
    pub fn embed_rows(
        &self,
        id: &str,
        texts: &[String],
    ) -> Result<(Embeddings, Vec<usize>), ApiError> {
        let s = self.served(id)?;
        let model_err = |e: Error| ApiError::from_model(&e);
        let opts = EmbedOptions {
            pooling: s.model.info.family.default_pooling(),
            max_len: 256,
            batch_size: 32,
            normalize: false,
        };
        let tokens = texts
            .iter()
            .map(|t| s.model.encode(t, opts.max_len).map(|ids| ids.len()))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(model_err)?;
        let emb = embed_texts(&s.model, texts, &opts, &Silent).map_err(model_err)?;
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
