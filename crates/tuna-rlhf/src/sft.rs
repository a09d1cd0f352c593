//! Supervised finetuning on instruction data: the loss is the mean negative log-likelihood of
//! the response tokens (the end-of-turn token included), the prompt only conditions. Full or
//! LoRA; the result is written as a plain checkpoint (LoRA merged) that later stages start from,
//! with sample generations for held-out prompts.

use crate::format::{FormatKind, Formatter, Seq};
use crate::log::LogRow;
use crate::logprobs::response_logprobs;
use crate::records::{split_indices, Example, Prompt};
use crate::stage::{
    first_eval, last_eval, remove_checkpoint, train_stage, value, write_log, Stage,
};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tuna_adapt::{Method, MethodName};
use tuna_lm::{stop_token_ids, GenerateConfig, Generator, Sampling};
use tuna_models::Model;
use tuna_nn::Pooling;
use tuna_train::finetune::merge::write_checkpoint;
use tuna_train::finetune::{peft, HeadConfig, TaskModel, TrainConfig};
use tuna_train::{Error, Progress, Result};

/// Everything that defines a supervised finetuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftConfig {
    pub method: Method,
    pub train: TrainConfig,
    pub format: FormatKind,
    /// Share of the examples held out for the evaluation loss and the samples.
    pub held_out: f64,
    /// Held-out prompts answered greedily after training (samples.jsonl).
    pub samples: usize,
    pub max_new_tokens: usize,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct SftReport {
    pub trainable: usize,
    pub train_examples: usize,
    pub held_out_examples: usize,
    pub eval_loss_before: f64,
    pub eval_loss_after: f64,
    pub steps: usize,
    pub seconds: f64,
}

/// The sub-folder of a run holding the finetuned model as a plain checkpoint.
pub const MODEL_DIR: &str = "model";

struct SftStage {
    train: Vec<Seq>,
    held: Vec<Seq>,
    batch: usize,
}

/// Mean token negative log-likelihood of `seqs` (a graph when weights are tracked).
fn nll(tm: &TaskModel, seqs: &[&Seq]) -> Result<(Tensor, usize)> {
    let s = response_logprobs(tm, seqs, false)?;
    let n: usize = s.counts.iter().sum();
    Ok(((s.logp.sum_all()?.neg()? / n as f64)?, n))
}

impl Stage for SftStage {
    fn loss(&mut self, tm: &TaskModel, idx: &[usize], row: &mut LogRow) -> Result<Tensor> {
        let seqs: Vec<&Seq> = idx.iter().map(|&i| &self.train[i]).collect();
        let (loss, n) = nll(tm, &seqs)?;
        row.set("tokens", n as f64 / idx.len().max(1) as f64);
        Ok(loss)
    }

    /// The loss is a mean over the batch's response tokens.
    fn weight(&self, idx: &[usize]) -> f64 {
        idx.iter()
            .map(|&i| {
                let s = &self.train[i];
                s.ids.len().saturating_sub(s.prompt_len.max(1))
            })
            .sum::<usize>() as f64
    }

    fn evaluate(&mut self, tm: &TaskModel, row: &mut LogRow) -> Result<()> {
        let (mut sum, mut count) = (0.0, 0usize);
        for chunk in self.held.chunks(self.batch.max(1)) {
            let seqs: Vec<&Seq> = chunk.iter().collect();
            let (loss, n) = nll(tm, &seqs)?;
            sum += loss.to_scalar::<f32>()? as f64 * n as f64;
            count += n;
        }
        let loss = sum / count.max(1) as f64;
        row.set("eval_loss", loss)
            .set("eval_perplexity", loss.exp());
        Ok(())
    }

    fn shown(&self) -> &'static [&'static str] {
        &["loss", "lr"]
    }
}

/// Builds a language model with `method`'s trainable pieces (its head is unused).
pub fn language_model(model: Model, method: &Method, seed: u64) -> Result<TaskModel> {
    model.causal_lm()?;
    match method.name() {
        MethodName::Full | MethodName::Lora => {}
        k => {
            return Err(Error::Invalid(format!(
                "method `{}` is not available here: use full or lora",
                k.as_str()
            )))
        }
    }
    // The head is never used: a plain one keeps the random draws of the method the same.
    let head = HeadConfig {
        pooling: Pooling::Last,
        hidden: 0,
        dropout: 0.0,
    };
    Ok(TaskModel::build(model, method.clone(), &head, 1, seed)?)
}

/// Trains on `examples` and writes the run into `run` (created by the caller).
pub fn sft(
    model: Model,
    examples: &[Example],
    cfg: &SftConfig,
    run: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<(TaskModel, SftReport)> {
    let source = model.info.source.clone();
    let mut tm = language_model(model, &cfg.method, cfg.train.seed)?;
    let (train_idx, held_idx) = split_indices(examples.len(), cfg.held_out, cfg.train.seed);
    let fmt = Formatter::new(cfg.format, &tm.model.tokenizer, cfg.train.max_len)?;
    let seqs = |idx: &[usize]| -> Result<Vec<Seq>> {
        idx.iter()
            .map(|&i| Ok(fmt.seq(&examples[i].prompt, &examples[i].response)?))
            .collect()
    };
    let mut stage = SftStage {
        train: seqs(&train_idx)?,
        held: seqs(&held_idx)?,
        batch: cfg.train.batch_size,
    };
    let n = stage.train.len();
    let (opt, st) = train_stage(
        &mut tm, &mut stage, n, false, cfg, &cfg.train, run, resume, progress,
    )?;
    write_log(
        run,
        &st,
        "loss.svg",
        "Supervised finetuning",
        &["loss", "eval_loss"],
        &[],
    )?;
    save_language_model(&mut tm, run, &source)?;
    let held: Vec<&Example> = held_idx.iter().map(|&i| &examples[i]).collect();
    write_samples(
        &tm.model,
        &fmt,
        &held,
        cfg,
        &run.join("samples.jsonl"),
        progress,
    )?;
    remove_checkpoint(run)?;
    let report = SftReport {
        trainable: opt.count(),
        train_examples: stage.train.len(),
        held_out_examples: stage.held.len(),
        eval_loss_before: value(first_eval(&st), "eval_loss"),
        eval_loss_after: value(last_eval(&st), "eval_loss"),
        steps: st.step,
        seconds: st.seconds,
    };
    Ok((tm, report))
}

/// Writes a trained language model into `run`: a weight-delta method's adapter (PEFT layout) in
/// `adapter/`, then the model with the adapter merged as a plain checkpoint in `model/`.
pub fn save_language_model(tm: &mut TaskModel, run: &Path, source: &Path) -> Result<()> {
    if tm.method.mergeable() {
        peft::save_adapter(tm, &run.join("adapter"), source)?;
        tm.model.network.merge_deltas()?;
    }
    write_checkpoint(&mut tm.model, &run.join(MODEL_DIR))?;
    Ok(())
}

/// Greedy answers to the first `cfg.samples` held-out prompts, beside their references.
fn write_samples(
    model: &Model,
    fmt: &Formatter,
    held: &[&Example],
    cfg: &SftConfig,
    path: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let chosen: Vec<&&Example> = held.iter().take(cfg.samples).collect();
    let answers = generate(
        model,
        fmt,
        &chosen.iter().map(|e| &e.prompt).collect::<Vec<_>>(),
        cfg.max_new_tokens,
        &Sampling::default(),
        progress,
    )?;
    let mut out = String::new();
    for (e, a) in chosen.iter().zip(answers) {
        let (instruction, input) = match &e.prompt {
            Prompt::Task { instruction, input } => (instruction.clone(), input.clone()),
            Prompt::Dialogue(t) => (t.join("\n"), String::new()),
        };
        let line = serde_json::json!({
            "instruction": instruction,
            "input": input,
            "reference": e.response,
            "response": a,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| tuna_core::Error::io(path, e))?;
    Ok(())
}

/// Responses of `model` to `prompts` (batches of 8), stopping at the end of the turn.
pub fn generate(
    model: &Model,
    fmt: &Formatter,
    prompts: &[&Prompt],
    max_new_tokens: usize,
    sampling: &Sampling,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    let gen = Generator::new(model)?;
    let cfg = GenerateConfig {
        max_new_tokens,
        sampling: sampling.clone(),
        stop_strings: vec![],
        stop_tokens: stop_token_ids(&model.tokenizer),
    };
    progress.start("generating samples", prompts.len() as u64);
    let mut out = vec![];
    for chunk in prompts.chunks(8) {
        let ids = chunk
            .iter()
            .map(|p| fmt.prompt_seq(p, max_new_tokens))
            .collect::<tuna_core::Result<Vec<_>>>()?;
        for g in gen.generate_batch(&ids, &cfg)? {
            out.push(g.text.trim().to_string());
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    Ok(out)
}
