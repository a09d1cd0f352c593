//! `tuna dpo`: direct preference optimisation of a causal LM on preference pairs (LoRA or
//! full); writes the tuned model as a plain checkpoint in `OUT/model`.

use crate::commands::rlhf::{lm_method, StageArgs};
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use tuna_rlhf::dpo::{dpo, DpoConfig};

#[derive(Args)]
pub struct DpoCmd {
    #[command(flatten)]
    stage: StageArgs,
    /// full or lora.
    #[arg(long, default_value = "lora")]
    method: String,
    /// DPO's beta: how far the policy may move from the reference (smaller: further).
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
}

impl DpoCmd {
    pub fn run(&self, out: &Output) -> Result<()> {
        let a = &self.stage;
        let pairs = a.limited(tuna_rlhf::read_pairs(&a.data)?);
        let kind = lm_method(&self.method)?;
        let run = a.start()?;
        let ft = a.config(kind);
        let cfg = DpoConfig {
            method: ft.method,
            train: ft.train,
            format: a.format(&run.model.tokenizer),
            held_out: a.held_out,
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
        let (_tm, rep) = dpo(model, &pairs, &cfg, &run.dir(), a.train.resume, &bar)?;
        let dir = run.finish("dpo", &a.data, &cfg, &rep)?;
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
