//! Continuous batching of generations on the model thread. Every prompt of every generation
//! request is a row; rows of the base model and of its adapters that mix ([`crate::mix`]: LoRA,
//! DoRA, IA3, prefix, prompt) decode together in one [`DecodeBatch`], each row by its own
//! adapter, and a bottleneck adapter's rows in a batch of their own. Each [`Scheduler::step`]
//! advances every batch by one token, so no request waits for another to finish. Between
//! steps, rows whose client went away or whose time is up leave, and waiting prompts join
//! (prefilled by their own model, then merged into their batch) while fewer than `max_rows`
//! decode.

use crate::answer::{Answer, Event};
use crate::engine::Engine;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::GenParams;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tuna_lm::{DecodeBatch, Generation, RowEvent};

/// A row: (request number, prompt index).
type Key = (u64, usize);

/// A generation request being decoded.
struct Request {
    model: String,
    params: GenParams,
    answer: Answer,
    deadline: Instant,
    /// The time limit in seconds, for the message.
    limit: u64,
    /// Prompts not yet in a batch: (index, token ids).
    waiting: VecDeque<(usize, Vec<u32>)>,
    /// Each prompt's generation once it ended.
    done: Vec<Option<Generation>>,
}

impl Request {
    /// Whether its client stopped listening.
    fn gone(&self) -> bool {
        match &self.answer {
            Answer::Whole(tx) => tx.is_closed(),
            Answer::Stream(tx) => tx.is_closed(),
        }
    }
}

/// The generations in progress.
pub struct Scheduler {
    /// By arrival: prompts join in this order.
    requests: BTreeMap<u64, Request>,
    /// One batch per group of served models with rows ([`Engine::batch_group`]).
    batches: Vec<(String, DecodeBatch<Key>)>,
    next: u64,
    max_rows: usize,
}

impl Scheduler {
    /// A scheduler that decodes at most `max_rows` prompts together.
    pub fn new(max_rows: usize) -> Self {
        Self {
            requests: BTreeMap::new(),
            batches: Vec::new(),
            next: 0,
            max_rows: max_rows.max(1),
        }
    }

    /// Prompts decoding now.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|(_, b)| b.len()).sum()
    }

    /// True when no generation is in progress.
    pub fn is_idle(&self) -> bool {
        self.requests.is_empty()
    }

    /// Whether a generation in progress uses the served model `id`.
    pub fn uses(&self, id: &str) -> bool {
        self.requests.values().any(|r| r.model == id)
    }

    /// Whether another request may come in: fewer prompts decoding or waiting than `max_rows`.
    pub fn has_room(&self) -> bool {
        let waiting: usize = self.requests.values().map(|r| r.waiting.len()).sum();
        self.rows() + waiting < self.max_rows
    }

    /// Takes a generation of model `model` from `prompts` (token ids, checked); its prompts
    /// join a batch at the next step.
    pub fn add(
        &mut self,
        model: String,
        prompts: Vec<Vec<u32>>,
        params: GenParams,
        answer: Answer,
        (deadline, limit): (Instant, u64),
    ) {
        self.next += 1;
        let request = Request {
            model,
            params,
            answer,
            deadline,
            limit,
            done: vec![None; prompts.len()],
            waiting: prompts.into_iter().enumerate().collect(),
        };
        self.requests.insert(self.next, request);
    }

    /// One round: drops the requests whose client went away or whose time is up, lets waiting
    /// prompts join, and advances every batch by one token.
    pub fn step(&mut self, engine: &mut Engine, m: &Metrics) {
        self.drop_stopped(m);
        self.join_waiting(engine, m);
        for i in 0..self.batches.len() {
            let (group, batch) = &mut self.batches[i];
            let models: Vec<String> = batch
                .keys()
                .iter()
                .map(|(n, _)| self.requests.get(n).map_or(&*group, |r| &r.model).clone())
                .collect();
            match engine.step(&models, batch) {
                Ok(events) => {
                    m.decode_steps.fetch_add(1, Relaxed);
                    for e in events {
                        self.deliver(e, m);
                    }
                }
                Err(e) => {
                    let keys = batch.keys();
                    let _ = batch.remove(|_| true);
                    for (r, _) in keys {
                        self.fail(r, e.clone());
                    }
                }
            }
        }
        self.batches.retain(|(_, b)| !b.is_empty());
        m.running.store(self.rows() as u64, Relaxed);
    }

    /// Answers every request in progress with `e` (the model panicked).
    pub fn fail_all(&mut self, e: ApiError) {
        self.batches.clear();
        for (_, r) in std::mem::take(&mut self.requests) {
            r.answer.fail(e.clone());
        }
    }

    /// Stops the requests whose client is gone (nothing to answer) or whose time is up (504).
    fn drop_stopped(&mut self, m: &Metrics) {
        let now = Instant::now();
        let stopped: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.gone() || now > r.deadline)
            .map(|(&n, _)| n)
            .collect();
        for n in stopped {
            m.cancelled.fetch_add(1, Relaxed);
            if let Some(r) = self.take(n) {
                if !r.gone() {
                    r.answer.fail(ApiError::timeout(r.limit));
                }
            }
        }
    }

    /// Prefills waiting prompts, oldest request first, while fewer than `max_rows` decode.
    fn join_waiting(&mut self, engine: &Engine, m: &Metrics) {
        let mut rows = self.rows();
        let numbers: Vec<u64> = self.requests.keys().copied().collect();
        for n in numbers {
            while rows < self.max_rows {
                let Some(r) = self.requests.get_mut(&n) else {
                    break;
                };
                let Some((index, ids)) = r.waiting.pop_front() else {
                    break;
                };
                let model = r.model.clone();
                let joined = engine.generate_config(&model, &r.params).and_then(|cfg| {
                    let g = engine.generator(&model)?;
                    let batch = self.batch(&engine.batch_group(&model));
                    batch
                        .join(&g, (n, index), &ids, &cfg)
                        .map_err(|e| ApiError::from_model(&e))
                });
                match joined {
                    Ok(e) => {
                        rows += usize::from(e.done.is_none());
                        self.deliver(e, m);
                    }
                    Err(e) => self.fail(n, e),
                }
            }
        }
    }

    /// The batch of `model`, made when it has none.
    fn batch(&mut self, model: &str) -> &mut DecodeBatch<Key> {
        let i = match self.batches.iter().position(|(id, _)| id == model) {
            Some(i) => i,
            None => {
                self.batches
                    .push((model.to_string(), DecodeBatch::default()));
                self.batches.len() - 1
            }
        };
        &mut self.batches[i].1
    }

    /// Hands a row's new text and, once it ended, its generation to its client; answers a
    /// request whose prompts have all ended.
    fn deliver(&mut self, e: RowEvent<Key>, m: &Metrics) {
        let (n, index) = e.key;
        let Some(r) = self.requests.get_mut(&n) else {
            return;
        };
        if let Answer::Stream(tx) = &r.answer {
            if !e.text.is_empty() {
                let _ = tx.send(Event::Text {
                    index,
                    text: e.text,
                });
            }
        }
        let Some(g) = e.done else {
            return;
        };
        m.prompt_tokens.fetch_add(g.prompt_tokens as u64, Relaxed);
        m.generated_tokens.fetch_add(g.tokens.len() as u64, Relaxed);
        if let Answer::Stream(tx) = &r.answer {
            let _ = tx.send(Event::Done {
                index,
                generation: g.clone(),
            });
        }
        r.done[index] = Some(g);
        if r.waiting.is_empty() && r.done.iter().all(Option::is_some) {
            if let Some(r) = self.requests.remove(&n) {
                if let Answer::Whole(tx) = r.answer {
                    let _ = tx.send(Ok(r.done.into_iter().flatten().collect()));
                }
            }
        }
    }

    /// Answers request `n` with `e` and takes its rows out of their batch.
    fn fail(&mut self, n: u64, e: ApiError) {
        if let Some(r) = self.take(n) {
            r.answer.fail(e);
        }
    }

    /// Takes request `n` and its rows out of the scheduler.
    fn take(&mut self, n: u64) -> Option<Request> {
        let r = self.requests.remove(&n)?;
        for (_, batch) in &mut self.batches {
            if let Err(e) = batch.remove(|(k, _)| k == n) {
                tracing::error!("removing the rows of a stopped request: {e}");
            }
        }
        Some(r)
    }
}
