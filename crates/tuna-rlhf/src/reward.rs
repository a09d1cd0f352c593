//! Reward models: a causal LM with a scalar head on its last token, trained on preference pairs
//! with the Bradley-Terry loss `-log sigmoid(r(chosen) - r(rejected))`. LoRA, all weights, or
//! the head with the last N blocks.

use crate::format::{FormatKind, Formatter, Seq};
use crate::log::LogRow;
use crate::logprobs::neg_log_sigmoid;
use crate::records::{split_indices, Pair, Prompt};
use crate::stage::{
    first_eval, last_eval, remove_checkpoint, train_stage, value, write_log, Stage,
};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tuna_adapt::Method;
use tuna_models::tokenizer::pad_batch;
use tuna_models::Model;
use tuna_train::finetune::{
    load_finetuned, save_method_files, FinetuneConfig, HeadConfig, TaskModel, TrainConfig,
};
use tuna_train::{Error, Progress, Result};

/// Everything that defines a reward-model run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardConfig {
    pub method: Method,
    /// The scalar head.
    pub head: HeadConfig,
    pub train: TrainConfig,
    pub format: FormatKind,
    /// Share of the pairs held out for the reported accuracy.
    pub held_out: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct RewardReport {
    pub trainable: usize,
    pub train_pairs: usize,
    pub held_out_pairs: usize,
    /// Share of held-out pairs whose chosen response scores higher, before and after training.
    pub held_out_accuracy_before: f64,
    pub held_out_accuracy: f64,
    pub held_out_margin: f64,
    pub steps: usize,
    pub seconds: f64,
}

/// A trained reward model with its prompt format.
pub struct RewardModel {
    pub tm: TaskModel,
    pub fmt: Formatter,
}

const SCORE_BATCH: usize = 16;

impl RewardModel {
    /// Scores (B,) of tokenised sequences (a graph when the weights are tracked).
    pub fn score_seqs(&self, seqs: &[&Seq]) -> Result<Tensor> {
        let ids: Vec<&[u32]> = seqs.iter().map(|s| s.ids.as_slice()).collect();
        let batch = pad_batch(&ids, self.tm.model.tokenizer.pad_id, &self.tm.model.device)?;
        Ok(self.tm.logits(&batch)?.squeeze(1)?)
    }

    /// Scores of responses to prompts.
    pub fn score(&self, items: &[(&Prompt, &str)]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(SCORE_BATCH) {
            let seqs = chunk
                .iter()
                .map(|(p, r)| self.fmt.seq(p, r))
                .collect::<tuna_core::Result<Vec<_>>>()?;
            let refs: Vec<&Seq> = seqs.iter().collect();
            out.extend(self.score_seqs(&refs)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// Loads a finished reward run (its config.json names the base model).
    pub fn load(run: &Path, device: &Device) -> Result<Self> {
        let path = run.join("config.json");
        let raw: serde_json::Value = tuna_core::fsutil::read_json(&path)?;
        if raw.get("stage").and_then(|s| s.as_str()) != Some("reward") {
            return Err(Error::Invalid(format!(
                "{} is not a reward-model run (made by `tuna reward train`)",
                run.display()
            )));
        }
        let cfg: RewardConfig = serde_json::from_value(raw["settings"].clone())
            .map_err(|e| tuna_core::Error::bad_file(&path, e.to_string()))?;
        let recorded = raw["model"]
            .as_str()
            .ok_or_else(|| tuna_core::Error::bad_file(&path, "no `model`"))?;
        let from_run = raw["model_from_run"].as_str().map(Path::new);
        let model = tuna_train::run_model::resolve(run, Path::new(recorded), from_run, None)?;
        tracing::info!(model = %model.path.display(), how = %model.how, "reward model's base");
        let ft = FinetuneConfig {
            method: cfg.method.clone(),
            head: cfg.head.clone(),
            train: cfg.train.clone(),
        };
        let tm = load_finetuned(run, &ft, 1, &model.path, device)?;
        let fmt = Formatter::new(cfg.format, &tm.model.tokenizer, cfg.train.max_len)?;
        Ok(Self { tm, fmt })
    }
}

struct RewardStage {
    /// (chosen, rejected) of each pair.
    train: Vec<(Seq, Seq)>,
    held: Vec<(Seq, Seq)>,
}

/// (B,) chosen minus rejected score of `pairs`.
fn margins(tm: &TaskModel, pairs: &[&(Seq, Seq)]) -> Result<Tensor> {
    let mut seqs: Vec<&[u32]> = pairs.iter().map(|p| p.0.ids.as_slice()).collect();
    seqs.extend(pairs.iter().map(|p| p.1.ids.as_slice()));
    let batch = pad_batch(&seqs, tm.model.tokenizer.pad_id, &tm.model.device)?;
    let s = tm.logits(&batch)?.squeeze(1)?;
    let b = pairs.len();
    Ok((s.narrow(0, 0, b)? - s.narrow(0, b, b)?)?)
}

fn accuracy(m: &[f32]) -> f64 {
    m.iter().filter(|&&x| x > 0.0).count() as f64 / m.len().max(1) as f64
}

impl Stage for RewardStage {
    fn loss(&mut self, tm: &TaskModel, idx: &[usize], row: &mut LogRow) -> Result<Tensor> {
        let pairs: Vec<&(Seq, Seq)> = idx.iter().map(|&i| &self.train[i]).collect();
        let m = margins(tm, &pairs)?;
        let v = m.detach().to_vec1::<f32>()?;
        row.set("accuracy", accuracy(&v)).set(
            "margin",
            v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
        );
        Ok(neg_log_sigmoid(&m)?.mean_all()?)
    }

    fn evaluate(&mut self, tm: &TaskModel, row: &mut LogRow) -> Result<()> {
        let mut all = vec![];
        for chunk in self.held.chunks(SCORE_BATCH / 2) {
            let pairs: Vec<&(Seq, Seq)> = chunk.iter().collect();
            all.extend(margins(tm, &pairs)?.to_vec1::<f32>()?);
        }
        let n = all.len().max(1) as f64;
        let loss: f64 = all
            .iter()
            .map(|&x| (1.0 + (-(x as f64)).exp()).ln())
            .sum::<f64>()
            / n;
        row.set("eval_accuracy", accuracy(&all))
            .set(
                "eval_margin",
                all.iter().map(|&x| x as f64).sum::<f64>() / n,
            )
            .set("eval_loss", loss);
        Ok(())
    }

    fn shown(&self) -> &'static [&'static str] {
        &["loss", "accuracy"]
    }
}

/// Trains a reward model on `pairs` and writes it into `run`.
pub fn train_reward(
    model: Model,
    pairs: &[Pair],
    cfg: &RewardConfig,
    run: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<(RewardModel, RewardReport)> {
    model.causal_lm()?;
    let source = model.info.source.clone();
    let mut tm = TaskModel::build(model, cfg.method.clone(), &cfg.head, 1, cfg.train.seed)?;
    let fmt = Formatter::new(cfg.format, &tm.model.tokenizer, cfg.train.max_len)?;
    let (train_idx, held_idx) = split_indices(pairs.len(), cfg.held_out, cfg.train.seed);
    let tokenise = |idx: &[usize]| -> Result<Vec<(Seq, Seq)>> {
        idx.iter()
            .map(|&i| {
                let p = &pairs[i];
                Ok((
                    fmt.seq(&p.prompt, &p.chosen)?,
                    fmt.seq(&p.prompt, &p.rejected)?,
                ))
            })
            .collect()
    };
    let mut stage = RewardStage {
        train: tokenise(&train_idx)?,
        held: tokenise(&held_idx)?,
    };
    let n = stage.train.len();
    let (opt, st) = train_stage(
        &mut tm, &mut stage, n, true, cfg, &cfg.train, run, resume, progress,
    )?;
    write_log(
        run,
        &st,
        "loss.svg",
        "Reward model",
        &["loss", "eval_loss"],
        &["accuracy", "eval_accuracy"],
    )?;
    save_method_files(&mut tm, &opt.params.named(), run, &source)?;
    remove_checkpoint(run)?;
    let report = RewardReport {
        trainable: opt.count(),
        train_pairs: stage.train.len(),
        held_out_pairs: stage.held.len(),
        held_out_accuracy_before: value(first_eval(&st), "eval_accuracy"),
        held_out_accuracy: value(last_eval(&st), "eval_accuracy"),
        held_out_margin: value(last_eval(&st), "eval_margin"),
        steps: st.step,
        seconds: st.seconds,
    };
    Ok((RewardModel { tm, fmt }, report))
}
