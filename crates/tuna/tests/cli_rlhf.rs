//! `tuna sft`, `tuna reward train|score`, `tuna dpo` and `tuna ppo` chained on a tiny random
//! Llama: each stage starts from the previous one's files, reports JSON, and fails clearly.

mod common;
use common::data::rlhf_setup as setup;
use common::{ok, tuna};

const SMALL: [&str; 8] = [
    "--train-batch",
    "4",
    "--max-len",
    "48",
    "--epochs",
    "1",
    "--json",
    "-q",
];

fn args<'a>(head: &[&'a str]) -> Vec<&'a str> {
    head.iter().copied().chain(SMALL).collect()
}

#[test]
fn sft_reward_dpo_ppo_chain() {
    let tmp = setup();
    let d = tmp.path();
    let j = ok(&tuna(
        d,
        &args(&[
            "sft",
            "-m",
            "lm",
            "-d",
            "inst.json",
            "-o",
            "sft",
            "--samples",
            "1",
            "--max-new-tokens",
            "3",
        ]),
    ));
    assert_eq!(
        j["report"]["train_examples"].as_u64().unwrap()
            + j["report"]["held_out_examples"].as_u64().unwrap(),
        12
    );
    assert!(d.join("sft/model/model.safetensors").exists());
    assert!(d.join("sft/adapter/adapter_config.json").exists());
    assert_eq!(
        std::fs::read_to_string(d.join("sft/samples.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );

    let j = ok(&tuna(
        d,
        &args(&[
            "reward",
            "train",
            "-m",
            "lm",
            "-d",
            "pairs.jsonl",
            "-o",
            "rm",
        ]),
    ));
    assert!(j["report"]["held_out_accuracy"].as_f64().unwrap() >= 0.0);
    let j = ok(&tuna(
        d,
        &[
            "reward",
            "score",
            "--run",
            "rm",
            "--prompt",
            "reply to hi",
            "--response",
            "thank you",
            "--response",
            "go away",
            "--json",
        ],
    ));
    assert_eq!(j["scores"].as_array().unwrap().len(), 2);
    let j = ok(&tuna(
        d,
        &[
            "reward",
            "score",
            "--run",
            "rm",
            "-d",
            "pairs.jsonl",
            "--json",
        ],
    ));
    assert_eq!(j["pairs"], 12);

    let j = ok(&tuna(
        d,
        &args(&["dpo", "-m", "sft/model", "-d", "pairs.jsonl", "-o", "dpo"]),
    ));
    assert!(j["report"]["held_out_margin_after"]
        .as_f64()
        .unwrap()
        .is_finite());
    assert!(d.join("dpo/dpo.svg").exists());

    let j = ok(&tuna(
        d,
        &args(&[
            "ppo",
            "-m",
            "sft/model",
            "--reward",
            "rm",
            "-d",
            "inst.json",
            "-o",
            "ppo",
            "--iterations",
            "2",
            "--rollouts",
            "2",
            "--minibatch",
            "2",
            "--max-new-tokens",
            "3",
            "--eval-prompts",
            "2",
            "--eval-every",
            "1",
        ]),
    ));
    assert_eq!(j["report"]["iterations"], 2);
    for f in [
        "ppo.svg",
        "ppo-stats.svg",
        "metrics.csv",
        "config.json",
        "model/config.json",
    ] {
        assert!(d.join("ppo").join(f).exists(), "{f} missing");
    }
}

#[test]
fn clear_errors() {
    let tmp = setup();
    let d = tmp.path();
    let fails = |a: &[&str], want: &str| {
        let out = tuna(d, a);
        assert!(!out.status.success(), "{a:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{a:?}: {err}");
    };
    fails(
        &[
            "sft",
            "-m",
            "lm",
            "-d",
            "inst.json",
            "-o",
            "x",
            "--method",
            "prefix",
        ],
        "use full or lora",
    );
    fails(
        &["reward", "train", "-m", "lm", "-d", "inst.json", "-o", "x"],
        "no `chosen` text",
    );
    fails(
        &["sft", "-m", "lm", "-d", "inst.json", "-o", "y", "--resume"],
        "no unfinished run",
    );
    ok(&tuna(
        d,
        &args(&[
            "sft",
            "-m",
            "lm",
            "-d",
            "inst.json",
            "-o",
            "sft",
            "--max-steps",
            "1",
            "--samples",
            "0",
        ]),
    ));
    fails(
        &[
            "ppo",
            "-m",
            "lm",
            "--reward",
            "sft",
            "-d",
            "inst.json",
            "-o",
            "p",
        ],
        "not a reward-model run",
    );
}
