//! Contract tests of the RLHF stages on a tiny random Llama: response log-probabilities equal
//! a direct computation, supervised finetuning lowers the held-out loss and resumes after a
//! kill exactly, the reward model learns a separable preference, DPO widens the held-out
//! margin, and PPO runs with its reference equal to the starting policy and saves its whole
//! value head.

use candle_core::{Device, Tensor, D};
use std::cell::{Cell, RefCell};
use std::path::Path;
use tuna_adapt::{Method, MethodArgs, MethodName};
use tuna_models::testing::{write_tiny_llama, write_tiny_llama_gguf};
use tuna_models::{load_model, Model};
use tuna_nn::Pooling;
use tuna_rlhf::dpo::{dpo, DpoConfig};
use tuna_rlhf::logprobs::response_logprobs;
use tuna_rlhf::ppo::{ppo, PpoConfig};
use tuna_rlhf::reward::{train_reward, RewardConfig, RewardModel};
use tuna_rlhf::sft::{language_model, sft, SftConfig, MODEL_DIR};
use tuna_rlhf::{Example, FormatKind, Formatter, Pair, Prompt};
use tuna_train::finetune::head::is_head_tensor;
use tuna_train::finetune::{peft, HeadConfig, TaskModel, TrainConfig, HEAD_FILE};
use tuna_train::{Progress, Silent};

fn method(kind: MethodName) -> Method {
    let mut a = MethodArgs::defaults();
    a.lora.lora_r = 4;
    a.lora.lora_alpha = 8.0;
    a.lora.lora_dropout = 0.0;
    a.adapter.adapter_size = 8;
    a.virtual_tokens = 4;
    a.prefix.prefix_hidden = 16;
    a.method(kind)
}

fn head(hidden: usize) -> HeadConfig {
    HeadConfig {
        pooling: Pooling::Last,
        hidden,
        dropout: 0.0,
    }
}

fn train(epochs: usize, lr: f64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        lr,
        max_len: 64,
        warmup: 0.0,
        checkpoint_every: 2,
        ..TrainConfig::default()
    }
}

fn tiny(dir: &Path) -> Model {
    if !dir.exists() {
        write_tiny_llama(dir, 3).unwrap();
    }
    load_model(dir, &Device::Cpu).unwrap()
}

fn task(i: usize) -> Prompt {
    Prompt::Task {
        instruction: format!("say the word {}", ["hi", "yes", "the", "in"][i % 4]),
        input: if i.is_multiple_of(3) {
            format!("case {i}")
        } else {
            String::new()
        },
    }
}

fn examples() -> Vec<Example> {
    (0..20)
        .map(|i| Example {
            prompt: task(i),
            response: ["hi hi", "yes yes", "the the", "in in"][i % 4].into(),
        })
        .collect()
}

fn pairs() -> Vec<Pair> {
    (0..24)
        .map(|i| Pair {
            prompt: task(i),
            chosen: "thank you kindly".into(),
            rejected: "go away now".into(),
        })
        .collect()
}

#[test]
fn response_logprobs_match_the_full_softmax() {
    let d = tempfile::tempdir().unwrap();
    let tm = language_model(tiny(&d.path().join("lm")), &method(MethodName::Lora), 1).unwrap();
    let fmt = Formatter::new(FormatKind::Alpaca, &tm.model.tokenizer, 64).unwrap();
    let a = fmt.seq(&task(0), "hi there").unwrap();
    let b = fmt.seq(&task(1), "yes").unwrap();
    let s = response_logprobs(&tm, &[&a, &b], true).unwrap();
    assert_eq!(s.counts, vec![a.response_len(), b.response_len()]);
    let got = s.sequence_logp().unwrap().to_vec1::<f32>().unwrap();
    for (k, seq) in [&a, &b].iter().enumerate() {
        let logits = tm.model.logits(&seq.ids).unwrap();
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let lp = lp.to_vec2::<f32>().unwrap();
        let want: f32 = (seq.prompt_len..seq.ids.len())
            .map(|p| lp[p - 1][seq.ids[p] as usize])
            .sum();
        assert!(
            (got[k] - want).abs() < 1e-4,
            "row {k}: {} vs {want}",
            got[k]
        );
    }
    let ent = s.entropy.unwrap().to_vec1::<f32>().unwrap();
    assert!(ent.iter().all(|&e| e > 0.0));
}

#[test]
fn chat_format_trains_on_the_response_and_the_end_of_turn() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("lm.gguf");
    write_tiny_llama_gguf(&path, 2, candle_core::quantized::GgmlDType::F32).unwrap();
    let m = load_model(&path, &Device::Cpu).unwrap();
    assert_eq!(FormatKind::default_for(&m.tokenizer), FormatKind::Chat);
    let fmt = Formatter::new(FormatKind::Chat, &m.tokenizer, 64).unwrap();
    let p = task(1);
    let s = fmt.seq(&p, "yes").unwrap();
    assert_eq!(
        &s.ids[..s.prompt_len],
        fmt.prompt_ids(&p).unwrap().as_slice()
    );
    let tail = m.tokenizer.decode(&s.ids[s.prompt_len..], false).unwrap();
    assert_eq!(tail, "yes<|im_end|>");
}

struct KillAt {
    phase: RefCell<String>,
    steps: Cell<u64>,
    at: u64,
}

impl Progress for KillAt {
    fn start(&self, phase: &str, _: u64) {
        *self.phase.borrow_mut() = phase.to_string();
        self.steps.set(0);
    }
    fn advance(&self, n: u64) {
        if *self.phase.borrow() == "training" {
            self.steps.set(self.steps.get() + n);
            if self.steps.get() >= self.at {
                panic!("simulated kill");
            }
        }
    }
    fn finish(&self) {}
}

fn sft_cfg() -> SftConfig {
    SftConfig {
        method: method(MethodName::Full),
        train: train(3, 3e-3),
        format: FormatKind::Alpaca,
        held_out: 0.2,
        samples: 2,
        max_new_tokens: 4,
    }
}

#[test]
fn sft_lowers_the_held_out_loss_and_resumes_exactly() {
    let d = tempfile::tempdir().unwrap();
    let lm = d.path().join("lm");
    let cfg = sft_cfg();
    let a = d.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    let (_, ra) = sft(tiny(&lm), &examples(), &cfg, &a, false, &Silent).unwrap();
    assert!(
        ra.eval_loss_after < ra.eval_loss_before,
        "{} -> {}",
        ra.eval_loss_before,
        ra.eval_loss_after
    );
    assert_eq!(ra.train_examples + ra.held_out_examples, 20);
    for f in ["metrics.csv", "loss.svg", "samples.jsonl"] {
        assert!(a.join(f).exists(), "{f} missing");
    }
    let exported = load_model(&a.join(MODEL_DIR), &Device::Cpu).unwrap();
    assert_eq!(exported.info.num_layers, 2);

    let b = d.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    let kill = KillAt {
        phase: RefCell::new(String::new()),
        steps: Cell::new(0),
        at: 5,
    };
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sft(tiny(&lm), &examples(), &cfg, &b, false, &kill).map(|_| ())
    }));
    assert!(crashed.is_err(), "the simulated kill did not happen");
    let (_, rb) = sft(tiny(&lm), &examples(), &cfg, &b, true, &Silent).unwrap();
    assert_eq!(ra.steps, rb.steps);
    assert_eq!(ra.eval_loss_after, rb.eval_loss_after);
    let csv = |p: &Path| std::fs::read_to_string(p.join("metrics.csv")).unwrap();
    assert_eq!(csv(&a), csv(&b), "curves differ after resume");
}

/// (loss, gradient norm) of the first optimiser step in a run's metrics.csv.
fn first_step(run: &Path) -> (f64, f64) {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let row: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r[0] == "1")
        .unwrap();
    let num = |name: &str| row[col(name)].parse::<f64>().unwrap();
    (num("loss"), num("grad_norm"))
}

#[test]
fn micro_batches_give_the_whole_batch_step() {
    // Responses of 1 to 4 words: a token mean over the batch is not a mean of piece means.
    let data: Vec<Example> = (0..20)
        .map(|i| Example {
            prompt: task(i),
            response: vec!["hi"; i % 4 + 1].join(" "),
        })
        .collect();
    let d = tempfile::tempdir().unwrap();
    let lm = d.path().join("lm");
    let mut steps = vec![];
    for micro_batch in [0, 1, 3] {
        let mut cfg = sft_cfg();
        cfg.train.max_steps = 1;
        cfg.train.micro_batch = micro_batch;
        let run = d.path().join(format!("m{micro_batch}"));
        std::fs::create_dir_all(&run).unwrap();
        sft(tiny(&lm), &data, &cfg, &run, false, &Silent).unwrap();
        steps.push(first_step(&run));
    }
    let (loss, norm) = steps[0];
    for &(l, n) in &steps[1..] {
        assert!((l - loss).abs() <= 1e-5 * loss, "loss {l} vs {loss}");
        assert!(
            (n - norm).abs() <= 1e-4 * norm,
            "gradient norm {n} vs {norm}"
        );
    }
}

#[test]
fn reward_model_learns_a_separable_preference() {
    let d = tempfile::tempdir().unwrap();
    let cfg = RewardConfig {
        method: method(MethodName::Full),
        head: head(0),
        train: train(6, 2e-3),
        format: FormatKind::Alpaca,
        held_out: 0.25,
    };
    let run = d.path().join("rm");
    std::fs::create_dir_all(&run).unwrap();
    let (rm, rep) = train_reward(
        tiny(&d.path().join("lm")),
        &pairs(),
        &cfg,
        &run,
        false,
        &Silent,
    )
    .unwrap();
    assert_eq!(rep.held_out_accuracy, 1.0, "{rep:?}");
    let p = task(5);
    let s = rm
        .score(&[(&p, "thank you kindly"), (&p, "go away now")])
        .unwrap();
    assert!(s[0] > s[1], "{s:?}");
}

#[test]
fn dpo_widens_the_held_out_margin() {
    let d = tempfile::tempdir().unwrap();
    let cfg = DpoConfig {
        method: method(MethodName::Lora),
        train: train(3, 5e-3),
        format: FormatKind::Alpaca,
        held_out: 0.25,
        beta: 0.1,
    };
    let run = d.path().join("dpo");
    std::fs::create_dir_all(&run).unwrap();
    let (_, rep) = dpo(
        tiny(&d.path().join("lm")),
        &pairs(),
        &cfg,
        &run,
        false,
        &Silent,
    )
    .unwrap();
    assert!(
        rep.held_out_margin_after > rep.held_out_margin_before,
        "{rep:?}"
    );
    assert!(run
        .join("adapter")
        .join("adapter_model.safetensors")
        .exists());
    assert!(run.join(MODEL_DIR).join("model.safetensors").exists());
}

/// A LoRA reward model trained for one epoch on a tiny LM written to `dir/lm`: (lm, model).
fn reward_model(dir: &Path) -> (std::path::PathBuf, RewardModel) {
    let lm = dir.join("lm");
    let rcfg = RewardConfig {
        method: method(MethodName::Lora),
        head: head(0),
        train: train(1, 1e-3),
        format: FormatKind::Alpaca,
        held_out: 0.25,
    };
    let run = dir.join("rm");
    std::fs::create_dir_all(&run).unwrap();
    let (rm, _) = train_reward(tiny(&lm), &pairs(), &rcfg, &run, false, &Silent).unwrap();
    (lm, rm)
}

#[test]
fn ppo_runs_against_a_reward_model_from_the_reference() {
    let d = tempfile::tempdir().unwrap();
    let (lm, rm) = reward_model(d.path());
    let cfg = PpoConfig {
        method: method(MethodName::Lora),
        head: head(0),
        train: train(1, 1e-3),
        format: FormatKind::Alpaca,
        held_out: 0.2,
        eval_prompts: 3,
        eval_every: 1,
        iterations: 2,
        rollouts: 4,
        ppo_epochs: 2,
        minibatch: 2,
        max_new_tokens: 6,
        temperature: 1.0,
        top_k: None,
        kl_coef: 0.05,
        gamma: 1.0,
        lam: 0.95,
        clip_range: 0.2,
        value_clip: 0.2,
        vf_coef: 0.1,
    };
    let out = d.path().join("ppo");
    std::fs::create_dir_all(&out).unwrap();
    let prompts: Vec<Prompt> = (0..10).map(task).collect();
    let (_, rep) = ppo(tiny(&lm), &rm, &prompts, &cfg, &out, false, &Silent).unwrap();
    assert_eq!(rep.iterations, 2);
    assert!(rep.eval_reward_before.is_finite() && rep.eval_reward_after.is_finite());
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for k in [
        "reward",
        "kl",
        "entropy",
        "clip_fraction",
        "value_loss",
        "eval_reward",
    ] {
        assert!(header.split(',').any(|h| h == k), "no {k} in {header}");
    }
    // Before any update the policy is its reference: zero KL on the first evaluation.
    let first = csv.lines().nth(1).unwrap();
    let col = header.split(',').position(|h| h == "eval_kl").unwrap();
    let kl: f64 = first.split(',').nth(col).unwrap().parse().unwrap();
    assert!(kl.abs() < 1e-4, "KL to the reference at the start: {kl}");
    for f in [
        "ppo.svg",
        "ppo-stats.svg",
        "eval_before.jsonl",
        "eval_after.jsonl",
        "head.safetensors",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}

/// The head tensors of `tm` (`score.*`, `score_hidden.*`, `score_pool.*`) by name.
fn head_tensors(tm: &mut TaskModel) -> Vec<(String, Tensor)> {
    let head = tm.head.name.clone();
    let mut out = vec![];
    tm.visit(&mut |name, t| {
        if is_head_tensor(&head, name) {
            out.push((name.to_string(), t.clone()));
        }
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn ppo_saves_and_reloads_a_value_head_with_a_hidden_layer() {
    let d = tempfile::tempdir().unwrap();
    let (lm, rm) = reward_model(d.path());
    let m = method(MethodName::Lora);
    let cfg = PpoConfig {
        method: m.clone(),
        head: head(8),
        train: train(1, 1e-2),
        format: FormatKind::Alpaca,
        held_out: 0.2,
        eval_prompts: 2,
        eval_every: 0,
        iterations: 1,
        rollouts: 4,
        ppo_epochs: 1,
        minibatch: 2,
        max_new_tokens: 4,
        temperature: 1.0,
        top_k: None,
        kl_coef: 0.05,
        gamma: 1.0,
        lam: 0.95,
        clip_range: 0.2,
        value_clip: 0.2,
        vf_coef: 0.1,
    };
    let out = d.path().join("ppo");
    std::fs::create_dir_all(&out).unwrap();
    let prompts: Vec<Prompt> = (0..10).map(task).collect();
    let (mut trained, _) = ppo(tiny(&lm), &rm, &prompts, &cfg, &out, false, &Silent).unwrap();
    let file = out.join(HEAD_FILE);
    let saved = peft::read_tensors(&file, &Device::Cpu).unwrap();
    let mut names: Vec<&String> = saved.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["score.weight", "score_hidden.weight"],
        "the head file lacks part of the head"
    );
    // A fresh policy with the saved head has the trained head, every tensor of it.
    let mut fresh = TaskModel::build(tiny(&lm), m, &head(8), 1, cfg.train.seed).unwrap();
    let untrained = head_tensors(&mut fresh);
    peft::load_into(&mut fresh, saved, &file).unwrap();
    let want = head_tensors(&mut trained);
    let got = head_tensors(&mut fresh);
    assert_eq!(want.len(), 2);
    for ((n, a), ((_, b), (_, u))) in want.iter().zip(got.iter().zip(&untrained)) {
        let diff = |x: &Tensor, y: &Tensor| {
            (x - y)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(diff(a, b), 0.0, "{n} differs after reloading");
        assert!(diff(a, u) > 0.0, "{n} did not train");
    }
}
