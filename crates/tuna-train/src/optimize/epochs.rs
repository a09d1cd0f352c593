//! The epoch loop: a seeded batch order per epoch, micro-batches accumulated into optimiser
//! steps (each with its own dropout seed), a checkpoint every N steps, an evaluation at the end
//! of each epoch (and of the step budget) with the best epoch kept and early stopping, and a
//! resume that continues exactly where a kill stopped it.

use super::halt::Halt;
use super::optimizer::Optimizer;
use super::seed::{epoch_order, mix};
use super::stage::{EvalPoint, Stage, StepReport, Values};
use super::state::LoopState;
use crate::finetune::TaskModel;
use crate::progress::Progress;
use crate::Result;
use candle_core::Tensor;
use std::path::Path;
use std::time::Instant;
use tuna_nn::dropout::TrainScope;

/// Where the loop checkpoints, and whether it continues from there.
pub struct Checkpoints<'a> {
    /// Checkpoint folder (none: no checkpoints).
    pub dir: Option<&'a Path>,
    /// The run's settings as JSON, stored in checkpoints and checked on resume.
    pub settings: &'a str,
    /// Continue from the checkpoint in `dir`.
    pub resume: bool,
}

/// What the loop produced.
pub struct LoopOutcome<R> {
    pub state: LoopState<R>,
    /// Optimiser step the run resumed from.
    pub resumed_at: Option<usize>,
    /// Stopped by patience before the last epoch.
    pub stopped_early: bool,
    /// Median seconds of one optimiser step.
    pub step_seconds: f64,
}

/// One run of the loop.
struct Run<'a, S: Stage> {
    tm: &'a mut TaskModel,
    opt: &'a mut Optimizer,
    stage: &'a mut S,
    n: usize,
    st: LoopState<S::Row>,
    best: Option<Vec<Tensor>>,
    ck: &'a Checkpoints<'a>,
    progress: &'a dyn Progress,
    t0: Instant,
    base_seconds: f64,
    step_times: Vec<f64>,
    stopped_early: bool,
    halt: Halt,
}

/// Trains `stage` over its `n` training items for the epochs of `opt.cfg`; at the end the best
/// epoch's values (if the stage scores) are in `opt` and installed, detached, in `tm`.
pub fn run<S: Stage>(
    tm: &mut TaskModel,
    opt: &mut Optimizer,
    stage: &mut S,
    n: usize,
    ck: &Checkpoints,
    progress: &dyn Progress,
) -> Result<LoopOutcome<S::Row>> {
    let (st, best, resumed_at) = match (ck.resume, ck.dir) {
        (true, Some(dir)) if crate::finetune::checkpoint::find(dir).is_none() => {
            // Stopped before its first checkpoint: nothing was kept, so it starts over.
            tracing::warn!(dir = %dir.display(), "no checkpoint yet: the run starts from the beginning");
            (LoopState::new(ck.settings), None, None)
        }
        (true, Some(dir)) => {
            let (s, b) = opt.resume(dir, ck.settings)?;
            let at = s.step;
            (s, b, Some(at))
        }
        (true, None) => {
            return Err(crate::Error::Invalid(
                "--resume: no checkpoint to resume from".into(),
            ))
        }
        (false, _) => (LoopState::new(ck.settings), None, None),
    };
    let mut r = Run {
        tm,
        opt,
        stage,
        n,
        st,
        best,
        ck,
        progress,
        t0: Instant::now(),
        base_seconds: 0.0,
        step_times: vec![],
        stopped_early: false,
        halt: Halt::from_env(),
    };
    r.base_seconds = r.st.seconds;
    if r.stage.evaluates_first() && r.st.history.is_empty() {
        r.evaluate(0.0)?;
    }
    let (epochs, total) = (r.opt.cfg.epochs, r.opt.total);
    r.progress.start("training", total as u64);
    r.progress.advance(r.st.step as u64);
    while r.st.epoch < epochs && r.st.step < total && !r.st.done {
        let batches = r.epoch()?;
        r.end_epoch(batches)?;
    }
    r.progress.finish();
    if let Some(b) = &r.best {
        r.opt.params.restore(b)?;
    }
    r.opt.install(r.tm, false)?;
    r.st.seconds = r.base_seconds + r.t0.elapsed().as_secs_f64();
    r.step_times.sort_by(f64::total_cmp);
    let step_seconds = r.step_times.get(r.step_times.len() / 2).copied();
    Ok(LoopOutcome {
        state: r.st,
        resumed_at,
        stopped_early: r.stopped_early,
        step_seconds: step_seconds.unwrap_or(0.0),
    })
}

/// The micro-batches of the step in progress.
#[derive(Default)]
struct Group {
    losses: Vec<f64>,
    values: Values,
}

impl<S: Stage> Run<'_, S> {
    /// The rest of the epoch in progress (or up to the step budget); returns its batch count.
    fn epoch(&mut self) -> Result<usize> {
        let cfg = self.opt.cfg.clone();
        let accum = cfg.grad_accum.max(1);
        let order = epoch_order(self.n, cfg.seed, self.st.epoch);
        let batches: Vec<&[usize]> = order.chunks(cfg.batch_size.max(1)).collect();
        let mut group = Group::default();
        let (t_epoch, mut t_step, mut seen) = (Instant::now(), Instant::now(), 0usize);
        while self.st.next_batch < batches.len() {
            let j = self.st.next_batch;
            if group.losses.is_empty() {
                self.opt.install(self.tm, true)?;
            }
            let in_group = accum.min(batches.len() - (j - j % accum)) as f64;
            let seed = mix(cfg.seed, self.st.epoch, j);
            let (loss, values) = self.batch(batches[j], seed, accum)?;
            group.losses.push(loss);
            for (k, v) in values {
                *group.values.entry(k).or_insert(0.0) += v / in_group;
            }
            seen += batches[j].len();
            self.st.next_batch += 1;
            let last = self.st.next_batch == batches.len();
            if !self.st.next_batch.is_multiple_of(accum) && !last {
                continue;
            }
            let (lr, grad_norm) = self.opt.step()?;
            self.st.step = self.opt.steps();
            let loss = group.losses.iter().sum::<f64>() / group.losses.len() as f64;
            let report = StepReport {
                step: self.st.step,
                epoch_index: self.st.epoch,
                epoch: self.st.epoch as f64 + self.st.next_batch as f64 / batches.len() as f64,
                lr,
                grad_norm,
                loss,
                values: &group.values,
                examples_per_second: seen as f64 / t_epoch.elapsed().as_secs_f64().max(1e-9),
            };
            let row = self.stage.step_row(&report);
            let msg = self.stage.message(&report, &row);
            self.st.history.push(row);
            group = Group::default();
            self.step_times.push(t_step.elapsed().as_secs_f64());
            t_step = Instant::now();
            self.progress.advance(1);
            self.progress.message(&msg);
            let budget_hit = cfg.max_steps > 0 && self.st.step >= cfg.max_steps;
            let every = cfg.checkpoint_every;
            // The end of the epoch or of the budget is saved after its evaluation.
            if every > 0 && self.st.step.is_multiple_of(every) && !last && !budget_hit {
                self.save()?;
            }
            self.halt.after_step(self.st.step);
            if budget_hit {
                self.st.done = true;
                break;
            }
        }
        Ok(batches.len())
    }

    /// Forward and backward of one batch in pieces of at most `micro_batch` items (dropout seeded
    /// by `seed`), each piece's loss weighted by its share of the batch, the gradients summed
    /// with weight `1 / accum`. Returns the batch's loss and metrics (the metrics are means over
    /// items: each piece's weighted by its items).
    fn batch(&mut self, batch: &[usize], seed: u64, accum: usize) -> Result<(f64, Values)> {
        let size = match self.opt.cfg.micro_batch {
            0 => batch.len(),
            m => m,
        };
        let total = self.stage.weight(batch);
        let _scope = TrainScope::new(seed);
        let (mut loss, mut values) = (0.0, Values::new());
        for piece in batch.chunks(size.max(1)) {
            let share = if size >= batch.len() {
                1.0
            } else if total > 0.0 {
                self.stage.weight(piece) / total
            } else {
                piece.len() as f64 / batch.len() as f64
            };
            if share <= 0.0 {
                continue;
            }
            let mut part = Values::new();
            let l = self.stage.loss(self.tm, piece, &mut part)?;
            loss += l.to_scalar::<f32>()? as f64 * share;
            let items = piece.len() as f64 / batch.len() as f64;
            for (k, v) in part {
                *values.entry(k).or_insert(0.0) += v * items;
            }
            self.opt.backward(&l, share / accum as f64)?;
        }
        Ok((loss, values))
    }

    /// The end of an epoch (or of the step budget) with `batches` batches: evaluates, keeps the
    /// best, decides early stopping, and checkpoints.
    fn end_epoch(&mut self, batches: usize) -> Result<()> {
        let cfg = &self.opt.cfg;
        let (patience, epochs) = (cfg.patience, cfg.epochs);
        let frac = self.st.next_batch as f64 / batches.max(1) as f64;
        let score = self.evaluate(self.st.epoch as f64 + frac)?;
        if let Some(score) = score {
            if score > self.st.best_val.unwrap_or(f64::NEG_INFINITY) {
                self.st.best_val = Some(score);
                self.st.best_epoch = Some(self.st.epoch);
                self.st.bad_epochs = 0;
                self.best = Some(self.opt.params.snapshot()?);
            } else {
                self.st.bad_epochs += 1;
            }
        }
        self.st.epoch += 1;
        self.st.next_batch = 0;
        if score.is_some() && patience > 0 && self.st.bad_epochs >= patience {
            self.stopped_early = self.st.epoch < epochs;
            self.st.done = true;
        }
        self.save()
    }

    /// Evaluates at fractional epoch `epoch`, adds the row; returns the stage's score.
    fn evaluate(&mut self, epoch: f64) -> Result<Option<f64>> {
        let at = EvalPoint {
            step: self.st.step,
            epoch,
            lr: self.opt.lr_at(self.st.step.saturating_sub(1)),
        };
        self.opt.install(self.tm, false)?;
        let ev = self.stage.evaluate(self.tm, &at)?;
        self.st.history.push(ev.row);
        Ok(ev.score)
    }

    fn save(&mut self) -> Result<()> {
        self.st.seconds = self.base_seconds + self.t0.elapsed().as_secs_f64();
        match self.ck.dir {
            Some(dir) => self.opt.save(dir, &self.st, self.best.as_deref()),
            None => Ok(()),
        }
    }
}
