//! `tuna reward train|score`: a reward model from preference pairs (Bradley-Terry), and the
//! scores it gives to responses.

use crate::commands::rlhf::StageArgs;
use crate::output::Output;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tuna_adapt::MethodName;
use tuna_rlhf::records::Prompt;
use tuna_rlhf::reward::{train_reward, RewardConfig, RewardModel};

#[derive(Args)]
pub struct RewardCmd {
    #[command(subcommand)]
    action: RewardAction,
}

#[derive(Subcommand)]
enum RewardAction {
    /// Train a reward model on preference pairs.
    Train(Box<TrainArgs>),
    /// Score responses with a trained reward model, or measure its accuracy on pairs.
    Score(ScoreArgs),
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    stage: StageArgs,
    /// lora, full, or head (with --unfreeze-last N).
    #[arg(long, default_value = "lora")]
    method: String,
}

#[derive(Args)]
struct ScoreArgs {
    /// A run made by `tuna reward train`.
    #[arg(long)]
    run: PathBuf,
    /// Preference pairs to measure the accuracy on (as for training).
    #[arg(long, short, conflicts_with_all = ["prompt", "response"])]
    data: Option<PathBuf>,
    /// The instruction the responses answer.
    #[arg(long)]
    prompt: Option<String>,
    /// Responses to score (repeat the flag).
    #[arg(long)]
    response: Vec<String>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl RewardCmd {
    pub fn run(&self, out: &Output) -> Result<()> {
        match &self.action {
            RewardAction::Train(a) => a.run(out),
            RewardAction::Score(a) => a.run(out),
        }
    }
}

impl TrainArgs {
    fn run(&self, out: &Output) -> Result<()> {
        let a = &self.stage;
        let pairs = a.limited(tuna_rlhf::read_pairs(&a.data)?);
        let kind = match self.method.as_str() {
            "lora" => MethodName::Lora,
            "full" => MethodName::Full,
            "head" => MethodName::Head,
            other => bail!("--method {other}: use lora, full or head"),
        };
        let run = a.start()?;
        let ft = a.config(kind);
        let cfg = RewardConfig {
            method: ft.method,
            head: ft.head,
            train: ft.train,
            format: a.format(&run.model.tokenizer),
            held_out: a.held_out,
        };
        out.line(format!(
            "{} preference pairs, format {:?}",
            pairs.len(),
            cfg.format
        ));
        let bar = out.bar();
        let (run, model) = run.take_model();
        let (_rm, rep) = train_reward(model, &pairs, &cfg, &run.dir(), a.train.resume, &bar)?;
        let dir = run.finish("reward", &a.data, &cfg, &rep)?;
        out.line(format!(
            "held-out pairwise accuracy {:.2}% (before training {:.2}%, n = {}), mean margin {:.3}; {} steps in {:.0}s; run saved in {}",
            rep.held_out_accuracy * 100.0,
            rep.held_out_accuracy_before * 100.0,
            rep.held_out_pairs,
            rep.held_out_margin,
            rep.steps,
            rep.seconds,
            dir.display()
        ));
        out.result(json!({"ok": true, "command": "reward train", "run": dir, "report": rep}));
        Ok(())
    }
}

impl ScoreArgs {
    fn run(&self, out: &Output) -> Result<()> {
        let device = tuna_core::pick_device(&self.device)?;
        let rm = RewardModel::load(&self.run, &device)?;
        if let Some(path) = &self.data {
            let pairs = tuna_rlhf::read_pairs(path)?;
            let mut items = vec![];
            for p in &pairs {
                items.push((&p.prompt, p.chosen.as_str()));
                items.push((&p.prompt, p.rejected.as_str()));
            }
            let s = rm.score(&items)?;
            let wins = s.chunks(2).filter(|c| c[0] > c[1]).count();
            let acc = wins as f64 / pairs.len() as f64;
            out.line(format!(
                "pairwise accuracy {:.2}% ({wins} of {} pairs)",
                acc * 100.0,
                pairs.len()
            ));
            out.result(json!({"ok": true, "command": "reward score", "accuracy": acc, "pairs": pairs.len()}));
            return Ok(());
        }
        let Some(prompt) = &self.prompt else {
            bail!("give --data PAIRS, or --prompt with one or more --response");
        };
        if self.response.is_empty() {
            bail!("give at least one --response to score");
        }
        let p = Prompt::Task {
            instruction: prompt.clone(),
            input: String::new(),
        };
        let items: Vec<(&Prompt, &str)> = self.response.iter().map(|r| (&p, r.as_str())).collect();
        let s = rm.score(&items)?;
        for (r, v) in self.response.iter().zip(&s) {
            out.line(format!("{v:>9.4}  {r}"));
        }
        out.result(json!({"ok": true, "command": "reward score", "scores": s}));
        Ok(())
    }
}
