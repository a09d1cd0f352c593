//! The model's own thread and the bounded queue that feeds it. Handlers put a job in the queue
//! (full: 429) and wait for its answer on a channel. Generations are decoded together by the
//! [`Scheduler`] (continuous batching): the worker takes queued jobs between decoding steps
//! while the batch has room, so an adapter is loaded between steps, and removed once the
//! generations that use it are answered. Embedding and classification requests taken in one
//! round run as one batch per model ([`Gathered`]). A generation stops at the next step once its client is gone (the answer channel
//! closed) or its time is up.

pub use crate::answer::{Answer, Event};
use crate::engine::{Engine, Prompt};
use crate::error::ApiError;
use crate::gather::Gathered;
pub use crate::gather::{Classified, Embedded};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::request::GenParams;
use crate::scheduler::Scheduler;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

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
    limits: &Limits,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Queue, JoinHandle<()>)> {
    let capacity = limits.queue.max(1);
    let (tx, rx) = mpsc::channel::<Queued>(capacity);
    let m = metrics.clone();
    let max_batch = limits.max_batch;
    let handle = std::thread::Builder::new()
        .name("tuna-model".into())
        .spawn(move || work(engine, rx, Scheduler::new(max_batch), &m))?;
    let queue = Queue {
        tx,
        capacity,
        metrics,
        timeout: limits.timeout,
    };
    Ok((queue, handle))
}

/// The worker's loop: waits for a job when no generation is in progress; otherwise takes the
/// queued jobs while the batch has room, runs the adapter removals whose generations are over,
/// then one decoding step.
fn work(mut engine: Engine, mut rx: mpsc::Receiver<Queued>, mut s: Scheduler, m: &Metrics) {
    let mut open = true;
    // Removals of adapters that generations in progress use: run once those are answered.
    let mut parked: Vec<Queued> = Vec::new();
    loop {
        // Embedding and classification requests taken in this round, run as one batch each.
        let mut texts = Gathered::default();
        if s.is_idle() && parked.is_empty() {
            match rx.blocking_recv() {
                Some(q) => {
                    m.queued.fetch_sub(1, Relaxed);
                    take(&mut engine, &mut s, (&mut parked, &mut texts), q);
                }
                None => break,
            }
        }
        while open && s.has_room() {
            match rx.try_recv() {
                Ok(q) => {
                    m.queued.fetch_sub(1, Relaxed);
                    take(&mut engine, &mut s, (&mut parked, &mut texts), q);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        for q in std::mem::take(&mut parked) {
            take(&mut engine, &mut s, (&mut parked, &mut texts), q);
        }
        if !texts.is_empty() && catch_unwind(AssertUnwindSafe(|| texts.run(&engine))).is_err() {
            tracing::error!("a batch of embeddings or classifications panicked in the model");
        }
        if s.is_idle() {
            continue;
        }
        if catch_unwind(AssertUnwindSafe(|| s.step(&mut engine, m))).is_err() {
            tracing::error!("a decoding step panicked in the model; its clients got an error");
            s.fail_all(ApiError::internal(
                "the model failed on this request (see the server's log)",
            ));
            m.running.store(0, Relaxed);
        }
    }
}

/// Takes one job off the queue: a generation joins the scheduler, an embedding or
/// classification joins this round's batch, the removal of an adapter that generations in
/// progress use waits in `parked`, anything else runs now.
fn take(
    engine: &mut Engine,
    s: &mut Scheduler,
    (parked, texts): (&mut Vec<Queued>, &mut Gathered),
    q: Queued,
) {
    if let Job::RemoveAdapter { id, .. } = &q.job {
        if s.uses(id) {
            parked.push(q);
            return;
        }
    }
    let ran = catch_unwind(AssertUnwindSafe(|| run(engine, s, texts, q)));
    if ran.is_err() {
        tracing::error!("a request panicked in the model; its client got an error");
    }
}

fn run(engine: &mut Engine, s: &mut Scheduler, texts: &mut Gathered, q: Queued) {
    match q.job {
        Job::Generate {
            model,
            prompts,
            params,
            answer,
        } => match engine.prompt_ids(&model, &prompts) {
            Ok(ids) => s.add(model, ids, params, answer, (q.deadline, q.limit)),
            Err(e) => answer.fail(e),
        },
        Job::Embed {
            model,
            texts: t,
            answer,
        } => texts.embed(model, t, answer),
        Job::Classify {
            model,
            texts: t,
            answer,
        } => texts.classify(model, t, answer),
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
