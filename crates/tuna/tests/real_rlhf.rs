//! The RLHF verbs on the real SmolLM2-135M and the shared instruction and preference data, a few
//! steps each: the chat template frames the data, every stage starts from the files of the one
//! before, and PPO starts at zero KL from its reference. Needs scripts/fetch_models.sh (run by
//! scripts/test.sh).

mod common;
use common::{ok, real_model, shared_data, tuna};

#[test]
fn sft_reward_ppo_dpo_run_on_smollm2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let smol = real_model("smollm2.gguf");
    let smol = smol.to_str().unwrap();
    let inst = shared_data("instructions/instruction-data.json");
    let inst = inst.to_str().unwrap();
    let pairs = shared_data("preferences/instruction-data-with-preference.json");
    let pairs = pairs.to_str().unwrap();
    let small = [
        "--limit",
        "24",
        "--max-steps",
        "2",
        "--train-batch",
        "4",
        "--json",
        "-q",
    ];
    let run = |head: &[&str]| {
        let args: Vec<&str> = head.iter().chain(small.iter()).copied().collect();
        ok(&tuna(d, &args))
    };
    let j = run(&[
        "sft",
        "-m",
        smol,
        "-d",
        inst,
        "-o",
        "sft",
        "--samples",
        "1",
        "--max-new-tokens",
        "8",
    ]);
    let r = &j["report"];
    assert!(r["eval_loss_before"].as_f64().unwrap() > 0.0, "{j}");
    assert_eq!(r["steps"], 2);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("sft/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["settings"]["format"], "chat");
    // The exported model keeps the chat template, so later stages frame prompts the same way.
    let tc = std::fs::read_to_string(d.join("sft/model/tokenizer_config.json")).unwrap();
    assert!(tc.contains("<|im_start|>"), "{tc}");

    let j = run(&[
        "reward",
        "train",
        "-m",
        smol,
        "-d",
        pairs,
        "-o",
        "rm",
        "--method",
        "head",
        "--unfreeze-last",
        "1",
    ]);
    assert_eq!(j["report"]["steps"], 2);

    let j = run(&[
        "ppo",
        "-m",
        "sft/model",
        "--reward",
        "rm",
        "-d",
        inst,
        "-o",
        "ppo",
        "--iterations",
        "1",
        "--rollouts",
        "2",
        "--minibatch",
        "2",
        "--max-new-tokens",
        "8",
        "--eval-prompts",
        "2",
    ]);
    assert_eq!(j["report"]["iterations"], 1);
    let csv = std::fs::read_to_string(d.join("ppo/metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "eval_kl").unwrap();
    let kl0: f64 = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        kl0.abs() < 1e-3,
        "KL to the reference before any update: {kl0}"
    );

    let j = run(&["dpo", "-m", "sft/model", "-d", pairs, "-o", "dpo"]);
    assert!(
        j["report"]["held_out_margin_after"]
            .as_f64()
            .unwrap()
            .is_finite(),
        "{j}"
    );
}
