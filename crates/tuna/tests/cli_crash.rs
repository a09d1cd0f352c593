//! Every stage that checkpoints (classification finetuning, SFT, reward model, DPO, PPO), run by
//! the binary on a tiny model, killed with SIGKILL twice: once in its first epoch, before the
//! evaluation at that epoch's end, and once later. After `--resume` (after each kill) it must
//! leave the same files as a run that was never interrupted, bit for bit: weights, adapters,
//! curves, samples, configs; metrics.json up to its times, memory and resume record.
//!
//! The kills land at chosen optimiser steps (`TUNA_TEST_HALT_AT_STEP` holds the process there
//! until it is killed), some on a checkpoint step, some between checkpoints (the resume then
//! redoes the steps since the last one), one before the first checkpoint (the resume starts
//! over).

mod common;
use common::crash::crash_and_compare;
use common::data::{rlhf_setup, write_sms};
use common::{ok, tuna};
use tuna_models::testing::write_tiny_bert;

/// Tiny-run flags of the RLHF stages: 11 training items in batches of 4 (3 steps an epoch),
/// two epochs, a checkpoint every 2 steps.
const RLHF: [&str; 11] = [
    "--train-batch",
    "4",
    "--max-len",
    "48",
    "--epochs",
    "2",
    "--checkpoint-every",
    "2",
    "--seed",
    "3",
    "--json",
];

fn with<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

/// An RLHF stage's command (`cmd`) on the tiny Llama and `data`, with dropout in its LoRA,
/// then `extra`, then the tiny-run flags.
fn stage<'a>(cmd: &[&'a str], data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let common = ["-m", "lm", "-d", data, "--lora-dropout", "0.1"];
    with(&with(&with(cmd, &common), extra), &RLHF)
}

#[test]
fn classification_resumes_bit_for_bit_after_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_sms(&d.join("sms.tsv"), 30);
    // 48 training rows in batches of 8: 6 steps an epoch, 12 in all, dropout in LoRA and head.
    let args = [
        "--json",
        "train",
        "--method",
        "lora",
        "--model",
        "model",
        "--data",
        "sms.tsv",
        "--epochs",
        "2",
        "--train-batch",
        "8",
        "--lr",
        "0.01",
        "--lora-dropout",
        "0.1",
        "--checkpoint-every",
        "2",
    ];
    // Step 3: first epoch, between checkpoints; step 8: second epoch, on a checkpoint.
    let m = crash_and_compare(d, &args, &[(3, Some(2)), (8, Some(8))]);
    assert_eq!(m["resumed_at_step"], 8, "{m}");
    assert_eq!(m["steps"], 12, "{m}");
}

#[test]
fn sft_resumes_bit_for_bit_after_kills() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    let args = stage(
        &["sft"],
        "inst.json",
        &["--samples", "1", "--max-new-tokens", "3"],
    );
    // Step 1: before the first checkpoint (the resume starts over); step 5: second epoch.
    let m = crash_and_compare(d, &args, &[(1, None), (5, Some(4))]);
    assert_eq!(m["report"]["steps"], 6, "{m}");
}

#[test]
fn reward_model_resumes_bit_for_bit_after_kills() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    let args = stage(&["reward", "train"], "pairs.jsonl", &[]);
    let m = crash_and_compare(d, &args, &[(2, Some(2)), (4, Some(4))]);
    assert_eq!(m["report"]["steps"], 6, "{m}");
}

#[test]
fn dpo_resumes_bit_for_bit_after_kills() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    let args = stage(&["dpo"], "pairs.jsonl", &[]);
    // Step 3 ends the first epoch: killed before its evaluation and checkpoint.
    let m = crash_and_compare(d, &args, &[(3, Some(2)), (5, Some(4))]);
    assert_eq!(m["report"]["steps"], 6, "{m}");
}

#[test]
fn ppo_resumes_bit_for_bit_after_kills() {
    let tmp = rlhf_setup();
    let d = tmp.path();
    let rm = [
        "reward",
        "train",
        "-m",
        "lm",
        "-d",
        "pairs.jsonl",
        "-o",
        "rm",
        "--max-steps",
        "2",
    ];
    ok(&tuna(d, &with(&rm, &RLHF)));
    // 3 iterations of 2 rollouts, 2 update epochs of minibatches of 1: 4 steps an iteration;
    // a checkpoint after every iteration, an evaluation after the second.
    let args = [
        "ppo",
        "-m",
        "lm",
        "--reward",
        "rm",
        "-d",
        "inst.json",
        "--iterations",
        "3",
        "--rollouts",
        "2",
        "--minibatch",
        "1",
        "--ppo-epochs",
        "2",
        "--max-new-tokens",
        "3",
        "--eval-prompts",
        "1",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "1",
        "--max-len",
        "48",
        "--seed",
        "3",
        "--json",
    ];
    // Step 4: the end of the first iteration, after its checkpoint and before any evaluation
    // of the policy; step 10: inside the third iteration (the resume redoes it from step 8).
    let m = crash_and_compare(d, &args, &[(4, Some(4)), (10, Some(8))]);
    assert_eq!(m["report"]["iterations"], 3, "{m}");
}

#[test]
fn resuming_with_other_settings_is_refused_before_any_weight_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_sms(&d.join("sms.tsv"), 30);
    let args = [
        "train",
        "--method",
        "lora",
        "--model",
        "model",
        "--data",
        "sms.tsv",
        "--out",
        "r",
        "--train-batch",
        "8",
        "--checkpoint-every",
        "2",
    ];
    common::crash::kill_at_step(d, &args, 3);
    // Another LoRA rank: other tensor shapes in the checkpoint. The settings are compared
    // first, so the answer is the settings message, not a shape error from the tensor library.
    let out = tuna(d, &with(&args, &["--resume", "--lora-r", "4"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("made with other settings"), "{err}");
    ok(&tuna(d, &with(&args, &["--resume", "--json"])));
}

#[test]
fn a_second_run_given_the_same_out_leaves_the_running_one_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_bert(&d.join("model"), "bert", 5).unwrap();
    write_sms(&d.join("sms.tsv"), 30);
    let args = [
        "train",
        "--method",
        "lora",
        "--model",
        "model",
        "--data",
        "sms.tsv",
        "--out",
        "r",
        "--train-batch",
        "8",
        "--checkpoint-every",
        "2",
    ];
    let mut first = common::crash::halt_at_step(d, &args, 4);
    let state = d.join("r.partial/checkpoint/state.json");
    let before = std::fs::read(&state).unwrap();
    // A fresh run and a resume, while the first one still writes r.partial: both refused.
    for extra in [&[][..], &["--resume"][..]] {
        let out = tuna(d, &with(&args, extra));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} ran beside the first run");
        assert!(err.contains("still going"), "{extra:?}: {err}");
    }
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "the first run's checkpoint changed"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // Once it is gone, its unfinished run resumes.
    ok(&tuna(d, &with(&args, &["--resume", "--json"])));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("r/metrics.json")).unwrap()).unwrap();
    assert_eq!(m["resumed_at_step"], 4, "{m}");
}
