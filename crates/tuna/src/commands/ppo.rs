//! `tuna ppo`: PPO of a LoRA policy on a starting (SFT) model against a trained reward model,
//! with a per-token KL penalty to the starting model; logs and charts reward, KL, entropy and
//! clip fraction per iteration.

use crate::args::ModelArgs;
use crate::commands::finetune::FinetuneArgs;
use crate::commands::rlhf::{FormatArg, RlhfRun};
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tuna_nn::Pooling;
use tuna_rlhf::ppo::{ppo, PpoConfig};
use tuna_rlhf::reward::RewardModel;
use tuna_train::finetune::MethodKind;

#[derive(Args)]
pub struct PpoCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// A reward-model run (made by `tuna reward train`).
    #[arg(long)]
    reward: PathBuf,
    /// Prompts: JSON/JSONL records with `instruction` (and `input`).
    #[arg(long)]
    prompts: PathBuf,
    /// Run directory to create.
    #[arg(long, short)]
    out: PathBuf,
    /// Replace an existing run directory.
    #[arg(long)]
    overwrite: bool,
    /// Prompt format: chat (the model's template; the default when it has one) or alpaca.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Share of the prompts held out for evaluation.
    #[arg(long, default_value_t = 0.1)]
    held_out: f64,
    /// Held-out prompts answered greedily at each evaluation.
    #[arg(long, default_value_t = 48)]
    eval_prompts: usize,
    /// Evaluate every N iterations (and before and after; 0: only before and after).
    #[arg(long, default_value_t = 20)]
    eval_every: usize,
    /// Rollout-and-update iterations.
    #[arg(long, default_value_t = 60)]
    iterations: usize,
    /// Prompts sampled per iteration.
    #[arg(long, default_value_t = 16)]
    rollouts: usize,
    /// Passes over each iteration's rollouts.
    #[arg(long, default_value_t = 2)]
    ppo_epochs: usize,
    /// Rollouts per optimiser step.
    #[arg(long, default_value_t = 16)]
    minibatch: usize,
    /// Longest response in tokens.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature of the rollouts.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Sample among the k most likely tokens only.
    #[arg(long)]
    top_k: Option<usize>,
    /// Per-token KL penalty coefficient.
    #[arg(long, default_value_t = 0.05)]
    kl_coef: f64,
    /// Discount.
    #[arg(long, default_value_t = 1.0)]
    gamma: f64,
    /// GAE lambda.
    #[arg(long, default_value_t = 0.95)]
    lam: f64,
    /// Clip range of the probability ratio.
    #[arg(long, default_value_t = 0.2)]
    clip_range: f64,
    /// Clip range of the value update.
    #[arg(long, default_value_t = 0.2)]
    value_clip: f64,
    /// Weight of the value loss.
    #[arg(long, default_value_t = 0.1)]
    vf_coef: f64,
    /// Longest prompt + response in tokens.
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Seed of the split, initialisation and sampling.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    train: FinetuneArgs,
}

impl PpoCmd {
    pub fn run(&self, out: &Output) -> Result<()> {
        let prompts = tuna_rlhf::read_prompts(&self.prompts)?;
        let run = RlhfRun::start(&self.model, &self.out, self.overwrite, self.train.resume)?;
        let rm = RewardModel::load(&self.reward, &run.model.device)?;
        let mut ft = self
            .train
            .config(MethodKind::Lora, Pooling::Last, self.max_len, self.seed);
        ft.method.head_dropout = 0.0;
        let cfg = PpoConfig {
            method: ft.method,
            train: ft.train,
            format: FormatArg::resolve(self.format, &run.model.tokenizer),
            held_out: self.held_out,
            eval_prompts: self.eval_prompts,
            eval_every: self.eval_every,
            iterations: self.iterations,
            rollouts: self.rollouts,
            ppo_epochs: self.ppo_epochs,
            minibatch: self.minibatch,
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            kl_coef: self.kl_coef,
            gamma: self.gamma,
            lam: self.lam,
            clip_range: self.clip_range,
            value_clip: self.value_clip,
            vf_coef: self.vf_coef,
        };
        out.line(format!(
            "{} prompts, format {:?}, {} iterations of {} rollouts",
            prompts.len(),
            cfg.format,
            cfg.iterations,
            cfg.rollouts
        ));
        let bar = out.bar();
        let (run, model) = run.take_model();
        let (_tm, rep) = ppo(
            model,
            &rm,
            &prompts,
            &cfg,
            &run.dir(),
            self.train.resume,
            &bar,
        )?;
        let dir = run.finish("ppo", &self.prompts, &cfg, &rep)?;
        out.line(format!(
            "held-out mean reward {:.4} -> {:.4} (n = {}), KL to the reference {:.3}; {} iterations in {:.0}s; run saved in {}",
            rep.eval_reward_before,
            rep.eval_reward_after,
            rep.eval_prompts,
            rep.eval_kl_after,
            rep.iterations,
            rep.seconds,
            dir.display()
        ));
        out.result(json!({"ok": true, "command": "ppo", "run": dir, "report": rep}));
        Ok(())
    }
}
