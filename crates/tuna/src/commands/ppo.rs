//! `tuna ppo`: PPO of a LoRA policy on a starting (SFT) model against a trained reward model,
//! with a per-token KL penalty to the starting model; logs and charts reward, KL, entropy and
//! clip fraction per iteration.

use crate::commands::rlhf::StageArgs;
use crate::output::Output;
use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tuna_adapt::MethodName;
use tuna_rlhf::ppo::{ppo, PpoConfig};
use tuna_rlhf::reward::RewardModel;

#[derive(Args)]
pub struct PpoCmd {
    #[command(flatten)]
    stage: StageArgs,
    /// A reward-model run (made by `tuna reward train`).
    #[arg(long)]
    reward: PathBuf,
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
}

impl PpoCmd {
    pub fn run(&self, out: &Output) -> Result<()> {
        let a = &self.stage;
        if a.train.micro_batch.is_some() {
            bail!("ppo takes --minibatch (rollouts per update), not --micro-batch");
        }
        let prompts = a.limited(tuna_rlhf::read_prompts(&a.data)?);
        let run = a.start()?;
        let rm = RewardModel::load(&self.reward, &run.model.device)?;
        let mut ft = a.config(MethodName::Lora);
        ft.head.dropout = 0.0;
        ft.train.micro_batch = 0;
        let cfg = PpoConfig {
            method: ft.method,
            head: ft.head,
            train: ft.train,
            format: a.format(&run.model.tokenizer),
            held_out: a.held_out,
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
        let (_tm, rep) = ppo(model, &rm, &prompts, &cfg, &run.dir(), a.train.resume, &bar)?;
        let dir = run.finish("ppo", &a.data, &cfg, &rep)?;
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
