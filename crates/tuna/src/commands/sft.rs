//! `tuna sft`: supervised finetuning of a causal LM on instruction data (loss on the response
//! tokens), full or LoRA; writes the finetuned model as a plain checkpoint in `OUT/model`.

use crate::args::ModelArgs;
use crate::commands::finetune::FinetuneArgs;
use crate::commands::rlhf::{lm_method, FormatArg, RlhfRun};
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tuna_nn::Pooling;
use tuna_rlhf::sft::{sft, SftConfig, MODEL_DIR};

#[derive(Args)]
pub struct SftCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// Instruction data: a JSON list (or JSONL) of {instruction, input, output}.
    #[arg(long, short)]
    data: PathBuf,
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
    /// Share of the examples held out for the evaluation loss and the samples.
    #[arg(long, default_value_t = 0.1)]
    held_out: f64,
    /// Held-out prompts answered after training (samples.jsonl).
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Longest sample answer in tokens.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Longest prompt + response in tokens.
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Seed of the split, initialisation, batch order and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    train: FinetuneArgs,
}

impl SftCmd {
    pub fn run(&self, out: &Output) -> Result<()> {
        let examples = tuna_rlhf::read_examples(&self.data)?;
        let run = RlhfRun::start(&self.model, &self.out, self.overwrite, self.train.resume)?;
        let kind = lm_method(&self.method)?;
        let ft = self
            .train
            .config(kind, Pooling::Last, self.max_len, self.seed);
        let cfg = SftConfig {
            method: ft.method,
            train: ft.train,
            format: FormatArg::resolve(self.format, &run.model.tokenizer),
            held_out: self.held_out,
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
        let (_tm, rep) = sft(model, &examples, &cfg, &run.dir(), self.train.resume, &bar)?;
        let dir = run.finish("sft", &self.data, &cfg, &rep)?;
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
