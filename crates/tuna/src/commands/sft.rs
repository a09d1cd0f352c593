//! `tuna sft`: supervised finetuning of a causal LM on instruction data (loss on the response
//! tokens), full or LoRA; writes the finetuned model as a plain checkpoint in `OUT/model`.

use crate::commands::rlhf::{lm_method, StageArgs};
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use tuna_rlhf::sft::{sft, SftConfig, MODEL_DIR};

#[derive(Args)]
pub struct SftCmd {
    #[command(flatten)]
    stage: StageArgs,
    /// full or lora.
    #[arg(long, default_value = "lora")]
    method: String,
    /// Held-out prompts answered after training (samples.jsonl).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Longest sample answer in tokens.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
}

impl SftCmd {
    pub fn run(&self, out: &Output) -> Result<()> {
        let a = &self.stage;
        let examples = a.limited(tuna_rlhf::read_examples(&a.data)?);
        let kind = lm_method(&self.method)?;
        let run = a.start()?;
        let ft = a.config(kind);
        let cfg = SftConfig {
            method: ft.method,
            train: ft.train,
            format: a.format(&run.model.tokenizer),
            held_out: a.held_out,
            samples: self.samples,
            max_new_tokens: self.max_new_tokens,
        };
        out.line(format!(
            "{} instruction examples, format {:?}, method {}",
            examples.len(),
            cfg.format,
            self.method
        ));
        let bar = out.bar();
        let (run, model) = run.take_model();
        let (_tm, rep) = sft(model, &examples, &cfg, &run.dir(), a.train.resume, &bar)?;
        let dir = run.finish("sft", &a.data, &cfg, &rep)?;
        out.line(format!(
            "held-out loss {:.4} -> {:.4} ({} steps, {:.0}s, {} trainable parameters); model in {}",
            rep.eval_loss_before,
            rep.eval_loss_after,
            rep.steps,
            rep.seconds,
            rep.trainable,
            dir.join(MODEL_DIR).display()
        ));
        out.result(json!({"ok": true, "command": "sft", "run": dir, "report": rep}));
        Ok(())
    }
}
