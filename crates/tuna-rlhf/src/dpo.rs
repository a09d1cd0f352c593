//! Direct preference optimisation (Rafailov et al.): the policy learns from preference pairs
//! directly, with the loss `-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))` over summed
//! response log-probabilities. The reference is the policy before training, scored once.

use crate::format::{FormatKind, Formatter, Seq};
use crate::log::LogRow;
use crate::logprobs::{neg_log_sigmoid, response_logprobs};
use crate::records::{split_indices, Pair};
use crate::sft::{language_model, save_language_model};
use crate::stage::{
    first_eval, last_eval, remove_checkpoint, train_stage, value, write_log, Stage,
};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tuna_adapt::Method;
use tuna_models::Model;
use tuna_train::finetune::{TaskModel, TrainConfig};
use tuna_train::{Error, Progress, Result};

/// Everything that defines a DPO run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpoConfig {
    pub method: Method,
    pub train: TrainConfig,
    pub format: FormatKind,
    pub held_out: f64,
    /// Strength of the implicit KL constraint.
    pub beta: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct DpoReport {
    pub trainable: usize,
    pub train_pairs: usize,
    pub held_out_pairs: usize,
    /// Mean held-out log p(chosen) - log p(rejected), before and after.
    pub held_out_margin_before: f64,
    pub held_out_margin_after: f64,
    /// Share of held-out pairs with a positive implicit reward margin after training.
    pub held_out_reward_accuracy: f64,
    pub steps: usize,
    pub seconds: f64,
}

/// A pair as tokens, with the reference's summed response log-probabilities.
struct Scored {
    chosen: Seq,
    rejected: Seq,
    ref_chosen: f32,
    ref_rejected: f32,
}

struct DpoStage {
    train: Vec<Scored>,
    held: Vec<Scored>,
    beta: f64,
}

const BATCH: usize = 8;

/// (B,) summed response log-probabilities of chosen and of rejected.
fn policy_logps(tm: &TaskModel, pairs: &[&Scored]) -> Result<(Tensor, Tensor)> {
    let mut seqs: Vec<&Seq> = pairs.iter().map(|p| &p.chosen).collect();
    seqs.extend(pairs.iter().map(|p| &p.rejected));
    let s = response_logprobs(tm, &seqs, false)?.sequence_logp()?;
    let b = pairs.len();
    Ok((s.narrow(0, 0, b)?, s.narrow(0, b, b)?))
}

/// (implicit reward margins, chosen rewards, rejected rewards), each (B,).
fn rewards(tm: &TaskModel, pairs: &[&Scored], beta: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let (pc, pr) = policy_logps(tm, pairs)?;
    let dev = pc.device().clone();
    let rc: Vec<f32> = pairs.iter().map(|p| p.ref_chosen).collect();
    let rr: Vec<f32> = pairs.iter().map(|p| p.ref_rejected).collect();
    let c = ((pc - Tensor::new(rc.as_slice(), &dev)?)? * beta)?;
    let r = ((pr - Tensor::new(rr.as_slice(), &dev)?)? * beta)?;
    Ok(((&c - &r)?, c, r))
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}

impl Stage for DpoStage {
    fn loss(&mut self, tm: &TaskModel, idx: &[usize], row: &mut LogRow) -> Result<Tensor> {
        let pairs: Vec<&Scored> = idx.iter().map(|&i| &self.train[i]).collect();
        let (m, c, r) = rewards(tm, &pairs, self.beta)?;
        let mv = m.detach().to_vec1::<f32>()?;
        row.set("reward_margin", mean(&mv))
            .set(
                "reward_accuracy",
                mv.iter().filter(|&&x| x > 0.0).count() as f64 / mv.len() as f64,
            )
            .set("chosen_reward", mean(&c.detach().to_vec1()?))
            .set("rejected_reward", mean(&r.detach().to_vec1()?));
        Ok(neg_log_sigmoid(&m)?.mean_all()?)
    }

    fn evaluate(&mut self, tm: &TaskModel, row: &mut LogRow) -> Result<()> {
        let (mut margins, mut implicit) = (vec![], vec![]);
        for chunk in self.held.chunks(BATCH) {
            let pairs: Vec<&Scored> = chunk.iter().collect();
            let (pc, pr) = policy_logps(tm, &pairs)?;
            margins.extend((pc - pr)?.to_vec1::<f32>()?);
            implicit.extend(rewards(tm, &pairs, self.beta)?.0.to_vec1::<f32>()?);
        }
        let loss = implicit
            .iter()
            .map(|&x| (1.0 + (-(x as f64)).exp()).ln())
            .sum::<f64>()
            / implicit.len().max(1) as f64;
        row.set("eval_margin", mean(&margins))
            .set("eval_reward_margin", mean(&implicit))
            .set(
                "eval_reward_accuracy",
                implicit.iter().filter(|&&x| x > 0.0).count() as f64 / implicit.len().max(1) as f64,
            )
            .set("eval_loss", loss);
        Ok(())
    }

    fn shown(&self) -> &'static [&'static str] {
        &["loss", "reward_margin"]
    }
}

/// Tokenises `pairs` and scores them with `tm` as it is now (the reference).
fn score_reference(
    tm: &TaskModel,
    fmt: &Formatter,
    pairs: &[&Pair],
    progress: &dyn Progress,
) -> Result<Vec<Scored>> {
    let mut out = Vec::with_capacity(pairs.len());
    progress.start("scoring the reference", pairs.len() as u64);
    for chunk in pairs.chunks(BATCH) {
        let mut scored = vec![];
        for p in chunk {
            scored.push(Scored {
                chosen: fmt.seq(&p.prompt, &p.chosen)?,
                rejected: fmt.seq(&p.prompt, &p.rejected)?,
                ref_chosen: 0.0,
                ref_rejected: 0.0,
            });
        }
        let refs: Vec<&Scored> = scored.iter().collect();
        let (c, r) = policy_logps(tm, &refs)?;
        let (c, r) = (c.to_vec1::<f32>()?, r.to_vec1::<f32>()?);
        for (k, s) in scored.iter_mut().enumerate() {
            s.ref_chosen = c[k];
            s.ref_rejected = r[k];
        }
        out.extend(scored);
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    Ok(out)
}

/// Trains the policy on `pairs` with DPO and writes it into `run`.
pub fn dpo(
    model: Model,
    pairs: &[Pair],
    cfg: &DpoConfig,
    run: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<(TaskModel, DpoReport)> {
    if cfg.beta.is_nan() || cfg.beta <= 0.0 {
        return Err(Error::Invalid("--beta must be above 0".into()));
    }
    let source = model.info.source.clone();
    let mut tm = language_model(model, &cfg.method, cfg.train.seed)?;
    let fmt = Formatter::new(cfg.format, &tm.model.tokenizer, cfg.train.max_len)?;
    let (train_idx, held_idx) = split_indices(pairs.len(), cfg.held_out, cfg.train.seed);
    let pick = |idx: &[usize]| idx.iter().map(|&i| &pairs[i]).collect::<Vec<_>>();
    let mut stage = DpoStage {
        train: score_reference(&tm, &fmt, &pick(&train_idx), progress)?,
        held: score_reference(&tm, &fmt, &pick(&held_idx), progress)?,
        beta: cfg.beta,
    };
    let n = stage.train.len();
    let (opt, st) = train_stage(
        &mut tm, &mut stage, n, false, cfg, &cfg.train, run, resume, progress,
    )?;
    write_log(
        run,
        &st,
        "dpo.svg",
        "DPO",
        &["loss", "eval_loss"],
        &["reward_margin", "eval_margin"],
    )?;
    save_language_model(&mut tm, run, &source)?;
    remove_checkpoint(run)?;
    let report = DpoReport {
        trainable: opt.count(),
        train_pairs: stage.train.len(),
        held_out_pairs: stage.held.len(),
        held_out_margin_before: value(first_eval(&st), "eval_margin"),
        held_out_margin_after: value(last_eval(&st), "eval_margin"),
        held_out_reward_accuracy: value(last_eval(&st), "eval_reward_accuracy"),
        steps: st.step,
        seconds: st.seconds,
    };
    Ok((tm, report))
}
