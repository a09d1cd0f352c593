//! PPO against a reward model (InstructGPT's recipe, as TRL's PPO trainer runs it): the policy
//! is LoRA on the starting (SFT) model with a value head on its hidden states; the reference is
//! the same base with LoRA switched off, so the frozen weights are held once. Each iteration
//! samples responses, scores them, adds a per-token KL penalty to the reference, estimates
//! advantages with GAE, and takes clipped policy and value steps for a few epochs.

use crate::format::{FormatKind, Formatter, Seq};
use crate::log::{self, LogRow};
use crate::logprobs::response_logprobs;
use crate::optim::{checkpoint_dir, trainable, LoopState, Optimizer};
use crate::records::{split_indices, Prompt};
use crate::reward::RewardModel;
use crate::sft::save_language_model;
use crate::stage::{remove_checkpoint, value, write_log};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use tuna_adapt::{Method, MethodName};
use tuna_core::Rng;
use tuna_lm::{stop_token_ids, GenerateConfig, Generator, Sampling, StopReason};
use tuna_models::Model;
use tuna_train::finetune::{save_head, HeadConfig, TaskModel, TrainConfig};
use tuna_train::optimize::halt::Halt;
use tuna_train::optimize::seed::mix;
use tuna_train::{Error, Progress, Result};

/// Everything that defines a PPO run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoConfig {
    pub method: Method,
    /// The value head.
    pub head: HeadConfig,
    /// Learning rate, schedule, clipping, seed, checkpoint interval (in iterations).
    pub train: TrainConfig,
    pub format: FormatKind,
    /// Share of the prompts held out for evaluation.
    pub held_out: f64,
    /// Held-out prompts answered (greedily) at each evaluation.
    pub eval_prompts: usize,
    /// Evaluate every N iterations (and before and after).
    pub eval_every: usize,
    /// Rollout-and-update iterations.
    pub iterations: usize,
    /// Prompts sampled per iteration.
    pub rollouts: usize,
    /// Passes over each iteration's rollouts.
    pub ppo_epochs: usize,
    /// Rollouts per optimiser step.
    pub minibatch: usize,
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_k: Option<usize>,
    /// Per-token KL penalty coefficient.
    pub kl_coef: f64,
    pub gamma: f64,
    pub lam: f64,
    /// PPO's ratio clip range.
    pub clip_range: f64,
    /// Value clip range.
    pub value_clip: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct PpoReport {
    pub trainable: usize,
    pub train_prompts: usize,
    pub eval_prompts: usize,
    /// Mean reward of greedy responses to the held-out prompts, before (the starting model) and
    /// after.
    pub eval_reward_before: f64,
    pub eval_reward_after: f64,
    /// Mean summed KL (policy log-prob minus reference log-prob) of those responses.
    pub eval_kl_after: f64,
    pub iterations: usize,
    pub seconds: f64,
}

/// One sampled response.
struct Rollout {
    seq: Seq,
    text: String,
    score: f32,
}

/// Response tokens and the text, with the end-of-turn tokens when generation stopped there.
fn responses(
    tm: &TaskModel,
    fmt: &Formatter,
    prompts: &[&Prompt],
    cfg: &PpoConfig,
    sampling: Sampling,
    end: &[u32],
) -> Result<Vec<(Seq, String)>> {
    let gen = Generator::new(&tm.model)?;
    let gcfg = GenerateConfig {
        max_new_tokens: cfg.max_new_tokens,
        sampling,
        stop_strings: vec![],
        stop_tokens: stop_token_ids(&tm.model.tokenizer),
    };
    let ids = prompts
        .iter()
        .map(|p| fmt.prompt_seq(p, cfg.max_new_tokens + end.len()))
        .collect::<tuna_core::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in ids.chunks(16) {
        for (g, p) in gen.generate_batch(chunk, &gcfg)?.into_iter().zip(chunk) {
            let mut seq = p.clone();
            let prompt_len = seq.len();
            seq.extend(&g.tokens);
            if g.stop == StopReason::StopToken || g.tokens.is_empty() {
                seq.extend(end);
            }
            out.push((
                Seq {
                    ids: seq,
                    prompt_len,
                },
                g.text.trim().to_string(),
            ));
        }
    }
    Ok(out)
}

/// Per-token log-probs of the response tokens under the reference: the same network with every
/// LoRA switched off for this one pass.
fn reference_logp(tm: &mut TaskModel, seqs: &[&Seq]) -> Result<Vec<f32>> {
    let mut stash = vec![];
    tm.model.network.linears(&mut |_, l| {
        stash.push(l.delta.take());
        Ok(())
    })?;
    let r = response_logprobs(tm, seqs, false).and_then(|s| s.logp.to_vec1::<f32>());
    let mut it = stash.into_iter();
    tm.model.network.linears(&mut |_, l| {
        l.delta = it.next().flatten();
        Ok(())
    })?;
    Ok(r?)
}

/// Greedy responses to held-out prompts, scored.
struct Evaluation {
    /// Mean reward.
    reward: f64,
    /// Mean summed KL of the policy to the reference over each response.
    kl: f64,
    /// Each response with its reward.
    scored: Vec<(String, f32)>,
}

/// Answers `prompts` greedily and scores the answers.
fn evaluate(
    tm: &mut TaskModel,
    fmt: &Formatter,
    rm: &RewardModel,
    prompts: &[&Prompt],
    cfg: &PpoConfig,
    end: &[u32],
) -> Result<Evaluation> {
    let mut scored = vec![];
    let (mut kl_sum, mut n) = (0.0, 0usize);
    for chunk in prompts.chunks(16) {
        let outs = responses(tm, fmt, chunk, cfg, Sampling::default(), end)?;
        let items: Vec<(&Prompt, &str)> = chunk
            .iter()
            .zip(&outs)
            .map(|(p, (_, t))| (*p, t.as_str()))
            .collect();
        let scores = rm.score(&items)?;
        let seqs: Vec<&Seq> = outs.iter().map(|(s, _)| s).collect();
        let pol = response_logprobs(tm, &seqs, false)?.logp.to_vec1::<f32>()?;
        let refp = reference_logp(tm, &seqs)?;
        kl_sum += pol
            .iter()
            .zip(&refp)
            .map(|(a, b)| (a - b) as f64)
            .sum::<f64>();
        n += outs.len();
        scored.extend(outs.into_iter().map(|(_, t)| t).zip(scores));
    }
    let mean = scored.iter().map(|(_, s)| *s as f64).sum::<f64>() / n.max(1) as f64;
    Ok(Evaluation {
        reward: mean,
        kl: kl_sum / n.max(1) as f64,
        scored,
    })
}

fn write_eval(path: &Path, prompts: &[&Prompt], scored: &[(String, f32)]) -> Result<()> {
    let mut s = String::new();
    for (p, (text, r)) in prompts.iter().zip(scored) {
        let prompt = match p {
            Prompt::Task { instruction, input } => {
                format!("{instruction}\n\n{input}").trim().to_string()
            }
            Prompt::Dialogue(t) => t.join("\n"),
        };
        s.push_str(
            &serde_json::json!({"prompt": prompt, "response": text, "reward": r}).to_string(),
        );
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|e| tuna_core::Error::io(path, e))?;
    Ok(())
}

/// Per-token advantages and returns by GAE over one response's rewards and values.
pub fn gae(rewards: &[f32], values: &[f32], gamma: f64, lam: f64) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut adv = vec![0f32; n];
    let mut next_adv = 0f64;
    for t in (0..n).rev() {
        let next_v = if t + 1 < n { values[t + 1] as f64 } else { 0.0 };
        let delta = rewards[t] as f64 + gamma * next_v - values[t] as f64;
        next_adv = delta + gamma * lam * next_adv;
        adv[t] = next_adv as f32;
    }
    let ret = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, ret)
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}

/// What stays fixed over a PPO run.
struct Ppo<'a> {
    cfg: &'a PpoConfig,
    rm: &'a RewardModel,
    fmt: Formatter,
    prompts: &'a [Prompt],
    train_idx: Vec<usize>,
    eval_set: Vec<&'a Prompt>,
    /// End-of-turn tokens appended to a response that stopped there.
    end: Vec<u32>,
    /// The crash tests' hook: after each optimiser step (at an iteration's end, after its
    /// checkpoint).
    halt: Halt,
}

/// One iteration's rollouts, with what the update needs (computed without a graph).
struct Rollouts {
    rolls: Vec<Rollout>,
    scores: Vec<f32>,
    /// Per response token: the policy's log-probs and values, the reference's log-probs.
    old_logp: Vec<f32>,
    old_v: Vec<f32>,
    ref_logp: Vec<f32>,
    /// Response tokens of each rollout.
    counts: Vec<usize>,
}

/// Per-token normalised advantages and returns, each rollout's summed KL, and where each
/// rollout's tokens start.
struct Advantages {
    adv: Vec<f32>,
    ret: Vec<f32>,
    kls: Vec<f32>,
    starts: Vec<usize>,
}

/// Sums over an iteration's optimiser steps.
#[derive(Default)]
struct UpdateStats {
    policy_loss: f64,
    value_loss: f64,
    clip_fraction: f64,
    approx_kl: f64,
    entropy: f64,
    lr: f64,
    steps: usize,
}

/// Optimiser steps of one iteration.
fn steps_per_iteration(cfg: &PpoConfig) -> usize {
    cfg.ppo_epochs * cfg.rollouts.div_ceil(cfg.minibatch)
}

/// Trains the policy on `prompts` against `rm` and writes it into `run`.
#[allow(clippy::too_many_arguments)]
pub fn ppo(
    model: Model,
    rm: &RewardModel,
    prompts: &[Prompt],
    cfg: &PpoConfig,
    run: &Path,
    resume: bool,
    progress: &dyn Progress,
) -> Result<(TaskModel, PpoReport)> {
    if cfg.method.name() != MethodName::Lora {
        return Err(Error::Invalid(
            "PPO trains a LoRA policy (its reference is the same model with LoRA off): use --method lora".into(),
        ));
    }
    if cfg.rollouts == 0 || cfg.minibatch == 0 || cfg.ppo_epochs == 0 || cfg.iterations == 0 {
        return Err(Error::Invalid(
            "--iterations, --rollouts, --minibatch and --ppo-epochs must be at least 1".into(),
        ));
    }
    model.causal_lm()?;
    let source = model.info.source.clone();
    let mut tm = TaskModel::build(model, cfg.method.clone(), &cfg.head, 1, cfg.train.seed)?;
    let ctx = Ppo::new(&tm, rm, prompts, cfg)?;
    let names = trainable(&mut tm, true)?;
    let total = cfg.iterations * steps_per_iteration(cfg);
    let mut opt = Optimizer::for_names(&mut tm, &names, cfg.train.clone(), total)?;
    let settings = serde_json::to_string(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
    let ck = checkpoint_dir(run);
    let mut st = if resume && tuna_train::finetune::checkpoint::find(&ck).is_none() {
        // Stopped before its first checkpoint: nothing was kept, so it starts over.
        tracing::warn!(dir = %ck.display(), "no checkpoint yet: the run starts from the beginning");
        LoopState::new(&settings)
    } else if resume {
        resume_state(&mut opt, &ck, &settings)?
    } else {
        LoopState::new(&settings)
    };
    let mut before = None;
    if st.history.is_empty() {
        progress.start("evaluating the starting model", 0);
        before = Some(ctx.evaluate(&mut tm, &opt, &mut st, Some(run))?);
        progress.finish();
    }
    progress.start("PPO", cfg.iterations as u64);
    progress.advance(st.epoch as u64);
    let (t0, base_seconds) = (Instant::now(), st.seconds);
    while st.epoch < cfg.iterations {
        ctx.iteration(&mut tm, &mut opt, &mut st, progress)?;
        st.seconds = base_seconds + t0.elapsed().as_secs_f64();
        let every = cfg.train.checkpoint_every;
        if st.epoch == cfg.iterations || (every > 0 && st.epoch % every == 0) {
            opt.save(&ck, &st, None)?;
        }
        ctx.halt.after_step(st.step);
    }
    progress.finish();
    let report = ctx.finish(&mut tm, &opt, &mut st, before, run, &source)?;
    Ok((tm, report))
}

/// The loop state of the checkpoint in `ck`. Checkpoints of the earlier PPO loop counted
/// iterations as `step` (and had no epoch): those become iterations done, and the step is the
/// optimiser's count.
fn resume_state(opt: &mut Optimizer, ck: &Path, settings: &str) -> Result<LoopState> {
    let (mut st, _): (LoopState, _) = opt.resume(ck, settings)?;
    if st.epoch == 0 && st.step > 0 {
        st.epoch = st.step;
        st.step = opt.steps();
    }
    Ok(st)
}

impl<'a> Ppo<'a> {
    fn new(
        tm: &TaskModel,
        rm: &'a RewardModel,
        prompts: &'a [Prompt],
        cfg: &'a PpoConfig,
    ) -> Result<Self> {
        let fmt = Formatter::new(cfg.format, &tm.model.tokenizer, cfg.train.max_len)?;
        let any = prompts
            .first()
            .ok_or_else(|| Error::Invalid("no prompts".into()))?;
        let end = tm
            .model
            .tokenizer
            .encode_raw(&fmt.completion_text(any, "")?)?;
        let (train_idx, held_idx) = split_indices(prompts.len(), cfg.held_out, cfg.train.seed);
        let eval_set: Vec<&Prompt> = held_idx
            .iter()
            .take(cfg.eval_prompts)
            .map(|&i| &prompts[i])
            .collect();
        Ok(Self {
            cfg,
            rm,
            fmt,
            prompts,
            train_idx,
            eval_set,
            end,
            halt: Halt::from_env(),
        })
    }

    /// Evaluates the policy on the held-out prompts and adds the row to the curves; with `run`,
    /// writes the responses to `eval_before.jsonl` there. Returns the mean reward.
    fn evaluate(
        &self,
        tm: &mut TaskModel,
        opt: &Optimizer,
        st: &mut LoopState,
        run: Option<&Path>,
    ) -> Result<f64> {
        opt.install(tm, false)?;
        let e = evaluate(tm, &self.fmt, self.rm, &self.eval_set, self.cfg, &self.end)?;
        if let Some(run) = run {
            write_eval(&run.join("eval_before.jsonl"), &self.eval_set, &e.scored)?;
        }
        let mut row = LogRow::new(st.epoch);
        row.set("eval_reward", e.reward).set("eval_kl", e.kl);
        st.history.push(row);
        Ok(e.reward)
    }

    /// One rollout-and-update iteration, its row of the curves and, when due, an evaluation.
    fn iteration(
        &self,
        tm: &mut TaskModel,
        opt: &mut Optimizer,
        st: &mut LoopState,
        progress: &dyn Progress,
    ) -> Result<()> {
        let it = st.epoch;
        let r = self.rollout(tm, opt, it)?;
        let a = advantages(self.cfg, &r);
        let u = self.update(tm, opt, &r, &a, it)?;
        st.epoch += 1;
        st.step = opt.steps();
        let k = u.steps.max(1) as f64;
        let mut row = LogRow::new(st.epoch);
        row.set("reward", mean(&r.scores))
            .set("kl", mean(&a.kls))
            .set("entropy", u.entropy / k)
            .set("clip_fraction", u.clip_fraction / k)
            .set("approx_kl", u.approx_kl / k)
            .set("policy_loss", u.policy_loss / k)
            .set("value_loss", u.value_loss / k)
            .set(
                "response_tokens",
                r.counts.iter().sum::<usize>() as f64 / r.counts.len() as f64,
            )
            .set("lr", u.lr);
        tracing::debug!(sample = %r.rolls[0].text, "rollout");
        progress.message(&row.summary(&["reward", "kl", "clip_fraction"]));
        progress.advance(1);
        st.history.push(row);
        let last = st.epoch == self.cfg.iterations;
        if self.cfg.eval_every > 0 && st.epoch.is_multiple_of(self.cfg.eval_every) && !last {
            self.evaluate(tm, opt, st, None)?;
        }
        Ok(())
    }

    /// Iteration `it`'s rollouts: a seeded pass over the training prompts (a new order each
    /// pass, drawn once per pass), sampled responses, their rewards, and the policy's and the
    /// reference's log-probs and values.
    fn rollout(&self, tm: &mut TaskModel, opt: &Optimizer, it: usize) -> Result<Rollouts> {
        let (cfg, seed) = (self.cfg, self.cfg.train.seed);
        let per_pass = self.train_idx.len().max(1);
        let mut batch = vec![];
        let mut order: Option<(usize, Vec<usize>)> = None;
        for k in 0..cfg.rollouts {
            let g = it * cfg.rollouts + k;
            let pass = g / per_pass;
            if order.as_ref().is_none_or(|(p, _)| *p != pass) {
                let mut o = self.train_idx.clone();
                Rng::new(mix(seed, pass, 7)).shuffle(&mut o);
                order = Some((pass, o));
            }
            let (_, o) = order.as_ref().expect("drawn above");
            batch.push(&self.prompts[o[g % per_pass]]);
        }
        opt.install(tm, false)?;
        let sampling = Sampling {
            temperature: cfg.temperature,
            top_k: cfg.top_k,
            top_p: None,
            seed: mix(seed, it, 1),
        };
        let outs = responses(tm, &self.fmt, &batch, cfg, sampling, &self.end)?;
        let items: Vec<(&Prompt, &str)> = batch
            .iter()
            .zip(&outs)
            .map(|(p, (_, t))| (*p, t.as_str()))
            .collect();
        let scores = self.rm.score(&items)?;
        let rolls: Vec<Rollout> = outs
            .into_iter()
            .zip(&scores)
            .map(|((seq, text), &score)| Rollout { seq, text, score })
            .collect();
        let seqs: Vec<&Seq> = rolls.iter().map(|r| &r.seq).collect();
        let s = response_logprobs(tm, &seqs, false)?;
        let old_logp = s.logp.to_vec1::<f32>()?;
        let old_v = tm.head.forward(&s.hidden)?.squeeze(1)?.to_vec1::<f32>()?;
        let ref_logp = reference_logp(tm, &seqs)?;
        Ok(Rollouts {
            rolls,
            scores,
            old_logp,
            old_v,
            ref_logp,
            counts: s.counts,
        })
    }

    /// PPO's update epochs over the rollouts: clipped policy and value losses, one step of the
    /// shared optimiser per minibatch.
    fn update(
        &self,
        tm: &mut TaskModel,
        opt: &mut Optimizer,
        r: &Rollouts,
        a: &Advantages,
        it: usize,
    ) -> Result<UpdateStats> {
        let cfg = self.cfg;
        let mut u = UpdateStats::default();
        for e in 0..cfg.ppo_epochs {
            let mut order: Vec<usize> = (0..r.rolls.len()).collect();
            Rng::new(mix(cfg.train.seed, it, 100 + e)).shuffle(&mut order);
            for mb in order.chunks(cfg.minibatch) {
                opt.install(tm, true)?;
                let mseqs: Vec<&Seq> = mb.iter().map(|&i| &r.rolls[i].seq).collect();
                let pick = |v: &[f32]| -> Vec<f32> {
                    mb.iter()
                        .flat_map(|&i| v[a.starts[i]..a.starts[i] + r.counts[i]].to_vec())
                        .collect()
                };
                let dev = tm.model.device.clone();
                let t = |v: Vec<f32>| Tensor::new(v.as_slice(), &dev);
                let (o_lp, o_v) = (t(pick(&r.old_logp))?, t(pick(&r.old_v))?);
                let (adv, ret) = (t(pick(&a.adv))?, t(pick(&a.ret))?);
                let sc = response_logprobs(tm, &mseqs, true)?;
                let v = tm.head.forward(&sc.hidden)?.squeeze(1)?;
                let ratio = (&sc.logp - &o_lp)?.exp()?;
                let c = cfg.clip_range;
                let pg1 = (adv.neg()? * &ratio)?;
                let pg2 = (adv.neg()? * ratio.clamp(1.0 - c, 1.0 + c)?)?;
                let pg = pg1.maximum(&pg2)?.mean_all()?;
                let vc = (&o_v + (&v - &o_v)?.clamp(-cfg.value_clip, cfg.value_clip)?)?;
                let vf1 = (&v - &ret)?.sqr()?;
                let vf2 = (vc - &ret)?.sqr()?;
                let vf = (vf1.maximum(&vf2)?.mean_all()? * 0.5)?;
                let loss = (&pg + (&vf * cfg.vf_coef)?)?;
                opt.backward(&loss, 1.0)?;
                let (lr, _) = opt.step()?;
                if !opt.steps().is_multiple_of(steps_per_iteration(cfg)) {
                    self.halt.after_step(opt.steps());
                }
                let rv = ratio.detach().to_vec1::<f32>()?;
                u.clip_fraction += rv.iter().filter(|&&x| (x as f64 - 1.0).abs() > c).count()
                    as f64
                    / rv.len() as f64;
                u.approx_kl += mean(&(&o_lp - sc.logp.detach())?.to_vec1::<f32>()?);
                u.entropy += sc
                    .entropy
                    .as_ref()
                    .map(|e| e.mean_all().and_then(|m| m.to_scalar::<f32>()))
                    .transpose()?
                    .unwrap_or(0.0) as f64;
                u.policy_loss += pg.to_scalar::<f32>()? as f64;
                u.value_loss += vf.to_scalar::<f32>()? as f64;
                u.lr = lr;
                u.steps += 1;
            }
        }
        Ok(u)
    }

    /// The final evaluation, the curves and charts, the value head and the policy (adapter and
    /// merged model); removes the checkpoint. `before`: the starting model's mean reward when
    /// this process measured it.
    fn finish(
        &self,
        tm: &mut TaskModel,
        opt: &Optimizer,
        st: &mut LoopState,
        before: Option<f64>,
        run: &Path,
        source: &Path,
    ) -> Result<PpoReport> {
        opt.install(tm, false)?;
        let e = evaluate(tm, &self.fmt, self.rm, &self.eval_set, self.cfg, &self.end)?;
        write_eval(&run.join("eval_after.jsonl"), &self.eval_set, &e.scored)?;
        let mut row = LogRow::new(st.epoch);
        row.set("eval_reward", e.reward).set("eval_kl", e.kl);
        st.history.push(row);
        let r_before = before.unwrap_or_else(|| value(st.history.first(), "eval_reward"));
        write_log(
            run,
            st,
            "ppo.svg",
            "PPO: reward and KL to the reference",
            &["reward", "eval_reward"],
            &["kl", "eval_kl"],
        )?;
        log::write_chart(
            &run.join("ppo-stats.svg"),
            "PPO: entropy and clip fraction",
            &st.history,
            &["entropy"],
            &["clip_fraction", "approx_kl"],
        )?;
        // The whole value head (`score.*`, and `score_hidden.*` / `score_pool.*` when it has
        // them), by the same ownership rule as every other run.
        save_head(tm, &opt.params.named(), run)?;
        save_language_model(tm, run, source)?;
        remove_checkpoint(run)?;
        Ok(PpoReport {
            trainable: opt.count(),
            train_prompts: self.train_idx.len(),
            eval_prompts: self.eval_set.len(),
            eval_reward_before: r_before,
            eval_reward_after: e.reward,
            eval_kl_after: e.kl,
            iterations: st.epoch,
            seconds: st.seconds,
        })
    }
}

/// The per-token KL penalty to the reference plus the reward at the last token, advantages and
/// returns by GAE, advantages normalised over the iteration.
fn advantages(cfg: &PpoConfig, r: &Rollouts) -> Advantages {
    let (mut adv, mut ret, mut kls) = (vec![], vec![], vec![]);
    let mut at = 0;
    for (roll, &c) in r.rolls.iter().zip(&r.counts) {
        let kl: Vec<f32> = (at..at + c)
            .map(|j| r.old_logp[j] - r.ref_logp[j])
            .collect();
        let mut rew: Vec<f32> = kl
            .iter()
            .map(|k| (-cfg.kl_coef * *k as f64) as f32)
            .collect();
        if let Some(last) = rew.last_mut() {
            *last += roll.score;
        }
        let (a, rt) = gae(&rew, &r.old_v[at..at + c], cfg.gamma, cfg.lam);
        adv.extend(a);
        ret.extend(rt);
        kls.push(kl.iter().sum::<f32>());
        at += c;
    }
    let m = mean(&adv);
    let sd =
        (adv.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / adv.len().max(1) as f64).sqrt();
    let adv = adv
        .iter()
        .map(|&x| ((x as f64 - m) / (sd + 1e-8)) as f32)
        .collect();
    let starts = r
        .counts
        .iter()
        .scan(0, |a, &c| {
            let s = *a;
            *a += c;
            Some(s)
        })
        .collect();
    Advantages {
        adv,
        ret,
        kls,
        starts,
    }
}

#[cfg(test)]
mod tests {
    use super::gae;

    #[test]
    fn gae_matches_the_recursion() {
        let (a, r) = gae(&[0.0, 0.0, 1.0], &[0.5, 0.5, 0.5], 1.0, 1.0);
        // With gamma = lambda = 1 the advantage is the return minus the value.
        assert_eq!(a, vec![0.5, 0.5, 0.5]);
        assert_eq!(r, vec![1.0, 1.0, 1.0]);
        let (a, _) = gae(&[1.0], &[0.25], 0.9, 0.95);
        assert_eq!(a, vec![0.75]);
    }
}
