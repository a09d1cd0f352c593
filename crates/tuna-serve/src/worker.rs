//! The model's own thread and the bounded queue that feeds it. Handlers put a job in the queue
//! (full: 429) and wait for its answer on a channel; the worker runs one job at a time, so an
//! adapter is loaded or removed between requests, never under one. A generation stops at its
//! next piece of text once its client is gone (the answer channel closed) or its time is up.

use crate::engine::{Engine, Prompt, STOPPED};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::GenParams;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tuna_lm::Generation;
use tuna_train::embedder::Embeddings;
use tuna_train::predict::Prediction;

/// A piece of a streamed answer.
#[derive(Debug)]
pub enum Event {
    /// New text of prompt `index`.
    Text { index: usize, text: String },
    /// Prompt `index` is done.
    Done {
        index: usize,
        generation: Generation,
    },
    /// The generation failed or was stopped; nothing follows.
    Error(ApiError),
}

/// Embeddings and the tokens they took.
pub type Embedded = (Embeddings, usize);

/// Predictions and the run's label names.
pub type Classified = (Vec<Prediction>, Vec<String>);

/// Where a generation's answer goes.
pub enum Answer {
    /// All at once, when every prompt is done.
    Whole(oneshot::Sender<Result<Vec<Generation>, ApiError>>),
    /// Piece by piece.
    Stream(mpsc::UnboundedSender<Event>),
}

impl Answer {
    /// Tells the client why its generation failed.
    fn fail(self, e: ApiError) {
        match self {
            Answer::Whole(tx) => drop(tx.send(Err(e))),
            Answer::Stream(tx) => drop(tx.send(Event::Error(e))),
        }
    }
}

/// Work for the model.
pub enum Job {
    Generate {
        model: String,
        prompts: Vec<Prompt>,
        params: GenParams,
        answer: Answer,
    },
    Embed {
        model: String,
        texts: Vec<String>,
        answer: oneshot::Sender<Result<Embedded, ApiError>>,
    },
    Classify {
        model: String,
        texts: Vec<String>,
        answer: oneshot::Sender<Result<Classified, ApiError>>,
    },
    /// Serve the adapter at `path` as `BASE:name`; answers that name.
    AddAdapter {
        name: String,
        path: PathBuf,
        answer: oneshot::Sender<Result<String, ApiError>>,
    },
    /// Stop serving the adapter `id` (`BASE:NAME`); answers whether it was served.
    RemoveAdapter {
        id: String,
        answer: oneshot::Sender<Result<bool, ApiError>>,
    },
}

/// A job with the time by which it must be done.
struct Queued {
    job: Job,
    deadline: Instant,
    /// The time limit in seconds, for the message.
    limit: u64,
}

/// The sending side of the queue.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Queued>,
    capacity: usize,
    metrics: Arc<Metrics>,
    timeout: std::time::Duration,
}

impl Queue {
    /// Puts `job` in the queue: 429 when it is full, 503 when the worker is gone.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        let q = Queued {
            job,
            deadline: Instant::now() + self.timeout,
            limit: self.timeout.as_secs(),
        };
        self.metrics.queued.fetch_add(1, Relaxed);
        self.tx.try_send(q).map_err(|e| {
            self.metrics.queued.fetch_sub(1, Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => ApiError::queue_full(self.capacity),
                mpsc::error::TrySendError::Closed(_) => ApiError::unavailable(),
            }
        })
    }
}

/// Starts the worker thread on `engine`; it ends once every [`Queue`] is dropped and the jobs
/// already queued are done.
pub fn start(
    engine: Engine,
    capacity: usize,
    timeout: std::time::Duration,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Queue, JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<Queued>(capacity.max(1));
    let m = metrics.clone();
    let handle = std::thread::Builder::new()
        .name("tuna-model".into())
        .spawn(move || {
            let mut engine = engine;
            while let Some(q) = rx.blocking_recv() {
                m.queued.fetch_sub(1, Relaxed);
                m.running.store(1, Relaxed);
                let ran = catch_unwind(AssertUnwindSafe(|| run(&mut engine, q, &m)));
                if ran.is_err() {
                    tracing::error!("a request panicked in the model; its client got an error");
                }
                m.running.store(0, Relaxed);
            }
        })?;
    let queue = Queue {
        tx,
        capacity: capacity.max(1),
        metrics,
        timeout,
    };
    Ok((queue, handle))
}

fn run(engine: &mut Engine, q: Queued, m: &Metrics) {
    let model_error = |e: tuna_core::Error| ApiError::from_model(&e);
    match q.job {
        Job::Generate {
            model,
            prompts,
            params,
            answer,
        } => match engine.prompt_ids(&model, &prompts) {
            Ok(ids) => generate(
                engine,
                &model,
                &ids,
                &params,
                answer,
                (q.deadline, q.limit),
                m,
            ),
            Err(e) => answer.fail(e),
        },
        Job::Embed {
            model,
            texts,
            answer,
        } => {
            if !answer.is_closed() {
                let _ = answer.send(engine.embed(&model, &texts));
            }
        }
        Job::Classify {
            model,
            texts,
            answer,
        } => {
            if !answer.is_closed() {
                let _ = answer.send(engine.classify(&model, &texts).map_err(model_error));
            }
        }
        Job::AddAdapter { name, path, answer } => {
            // Loaded even when the client is gone: the caller asked for it and may list it.
            let added = engine.add_adapter(&name, &path).map_err(|e| {
                let mut err = ApiError::from_model(&e);
                err.param = Some("path".into());
                err
            });
            let _ = answer.send(added);
        }
        Job::RemoveAdapter { id, answer } => {
            let _ = answer.send(Ok(engine.remove_adapter(&id)));
        }
    }
}

/// Why a generation was stopped early.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Gone,
    Late,
}

fn generate(
    engine: &Engine,
    model: &str,
    prompts: &[Vec<u32>],
    params: &GenParams,
    answer: Answer,
    (deadline, limit): (Instant, u64),
    m: &Metrics,
) {
    let mut stop = None;
    let mut done = Vec::with_capacity(prompts.len());
    let mut failed = None;
    for (index, prompt) in prompts.iter().enumerate() {
        let mut on_text = |text: &str| -> tuna_core::Result<()> {
            let gone = match &answer {
                Answer::Whole(tx) => tx.is_closed(),
                Answer::Stream(tx) => tx
                    .send(Event::Text {
                        index,
                        text: text.into(),
                    })
                    .is_err(),
            };
            stop = match (gone, Instant::now() > deadline) {
                (true, _) => Some(Stop::Gone),
                (false, true) => Some(Stop::Late),
                _ => None,
            };
            match stop {
                Some(_) => Err(tuna_core::Error::Invalid(STOPPED.into())),
                None => Ok(()),
            }
        };
        match engine.generate(model, prompt, params, &mut on_text) {
            Ok(g) => {
                m.prompt_tokens.fetch_add(g.prompt_tokens as u64, Relaxed);
                m.generated_tokens.fetch_add(g.tokens.len() as u64, Relaxed);
                if let Answer::Stream(tx) = &answer {
                    let _ = tx.send(Event::Done {
                        index,
                        generation: g.clone(),
                    });
                }
                done.push(g);
            }
            Err(e) => {
                failed = Some(match stop {
                    Some(s) => {
                        m.cancelled.fetch_add(1, Relaxed);
                        if s == Stop::Gone {
                            return;
                        }
                        ApiError::timeout(limit)
                    }
                    None => e,
                });
                break;
            }
        }
    }
    match (answer, failed) {
        (Answer::Whole(tx), None) => drop(tx.send(Ok(done))),
        (answer, Some(e)) => answer.fail(e),
        (Answer::Stream(_), None) => {}
    }
}
