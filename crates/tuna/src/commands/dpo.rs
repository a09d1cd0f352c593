//! `tuna dpo`: direct preference optimisation of a causal LM on preference pairs (LoRA or
//! full); writes the tuned model as a plain checkpoint in `OUT/model`.

use crate::args::ModelArgs;
use crate::commands::finetune::FinetuneArgs;
use crate::commands::rlhf::{lm_method, FormatArg, RlhfRun};
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tuna_nn::Pooling;
use tuna_rlhf::dpo::{dpo, DpoConfig};

#[derive(Args)]
pub struct DpoCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// Preference pairs (as for `tuna reward train`).
    #[arg(long, short)]
    data: PathBuf,
    /// Use only the first N pairs (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Run directory to create.
    #[arg(long, short)]
    out: PathBuf,
    /// Replace an existing run directory.
    #[arg(long)]
    overwrite: bool,
    /// full or lora.
    #[arg(long, default_value = "lora")]
    method: String,
    /// Prompt format: chat (the model's template; the default when it has one) or alpaca.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Share of the pairs held out for the reported margins.
    #[arg(long, default_value_t = 0.1)]
    held_out: f64,
    /// DPO's beta: how far the policy may move from the reference (smaller: further).
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Longest prompt + response in tokens.
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Seed of the split, initialisation, batch order and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    train: FinetuneArgs,
}

impl DpoCmd {
    pub fn run(&self, out: &Output) -> Result<()> {
        let mut pairs = tuna_rlhf::read_pairs(&self.data)?;
        if self.limit > 0 {
            pairs.truncate(self.limit);
        }
        let kind = lm_method(&self.method)?;
        let run = RlhfRun::start(&self.model, &self.out, self.overwrite, self.train.resume)?;
        let ft = self
            .train
            .config(kind, Pooling::Last, self.max_len, self.seed);
        let cfg = DpoConfig {
            method: ft.method,
            train: ft.train,
            format: FormatArg::resolve(self.format, &run.model.tokenizer),
            held_out: self.held_out,
            beta: self.beta,
        };
        out.line(format!(
            "{} preference pairs, format {:?}, beta {}",
            pairs.len(),
            cfg.format,
            cfg.beta
        ));
        let bar = out.bar();
        let (run, model) = run.take_model();
        let (_tm, rep) = dpo(model, &pairs, &cfg, &run.dir(), self.train.resume, &bar)?;
        let dir = run.finish("dpo", &self.data, &cfg, &rep)?;
        out.line(format!(
            "held-out log-probability margin (chosen - rejected) {:.3} -> {:.3}; implicit reward accuracy {:.2}% (n = {}); {} steps in {:.0}s; run saved in {}",
            rep.held_out_margin_before,
            rep.held_out_margin_after,
            rep.held_out_reward_accuracy * 100.0,
            rep.held_out_pairs,
            rep.steps,
            rep.seconds,
            dir.display()
        ));
        out.result(json!({"ok": true, "command": "dpo", "run": dir, "report": rep}));
        Ok(())
    }
}
