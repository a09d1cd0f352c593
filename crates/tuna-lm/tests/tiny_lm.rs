//! Generation and scoring on a tiny random Llama written in-process: the cached decode equals a
//! full forward pass, a batch equals its prompts run alone, a conversation's session cache gives
//! what a fresh run gives, and scores equal log-softmax of the full logits.

use candle_core::{Device, IndexOp, Tensor, D};
use tuna_lm::{
    Candidate, DemoPicker, GenerateConfig, Generator, IclClassifier, IclSettings, Pool,
    PromptTemplate, Sampling, Scorer, Selection, Session,
};
use tuna_models::{load_model, Ctx, Model, Network};

fn tiny() -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    tuna_models::testing::write_tiny_llama(dir.path(), 3).unwrap();
    let m = load_model(dir.path(), &Device::Cpu).unwrap();
    (dir, m)
}

fn cfg(n: usize, temperature: f64) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: n,
        sampling: Sampling {
            temperature,
            top_k: None,
            top_p: None,
            seed: 5,
        },
        stop_strings: vec![],
        stop_tokens: vec![],
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn cached_decode_equals_full_forward() {
    let (_d, m) = tiny();
    let Network::Llama(lm) = &m.network else {
        panic!()
    };
    let ids: Vec<u32> = vec![1, 7, 9, 12, 4, 30, 5, 8];
    let full = m.logits(&ids).unwrap(); // (T, V)
    let mut ctx = Ctx::with_cache(lm.num_layers());
    let first = Tensor::new(&ids[..5], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let h = lm
        .run_blocks(&lm.embed(&first).unwrap(), 0..lm.num_layers(), &mut ctx)
        .unwrap();
    let got = lm
        .logits(&lm.final_norm(&h).unwrap())
        .unwrap()
        .i(0)
        .unwrap();
    assert!(max_diff(&got, &full.narrow(0, 0, 5).unwrap()) < 1e-4);
    for (t, &id) in ids.iter().enumerate().skip(5) {
        let x = Tensor::new(&[[id]], &Device::Cpu).unwrap();
        let h = lm
            .run_blocks(&lm.embed(&x).unwrap(), 0..lm.num_layers(), &mut ctx)
            .unwrap();
        let got = lm
            .logits(&lm.final_norm(&h).unwrap())
            .unwrap()
            .i((0, 0))
            .unwrap();
        let d = max_diff(&got, &full.i(t).unwrap());
        assert!(d < 1e-4, "position {t}: {d}");
    }
    assert_eq!(ctx.cached_len().unwrap(), ids.len());
}

#[test]
fn greedy_generation_follows_argmax_of_full_forward() {
    let (_d, m) = tiny();
    let g = Generator::new(&m).unwrap();
    let prompt = vec![1u32, 7, 9];
    let out = g.generate(&prompt, &cfg(6, 0.0), &mut |_| Ok(())).unwrap();
    assert_eq!(out.tokens.len(), 6);
    let mut seq = prompt.clone();
    for &tok in &out.tokens {
        let logits = m.logits(&seq).unwrap();
        let last = logits.i(seq.len() - 1).unwrap().argmax(D::Minus1).unwrap();
        assert_eq!(last.to_scalar::<u32>().unwrap(), tok);
        seq.push(tok);
    }
}

#[test]
fn a_session_reuses_earlier_turns_and_generates_what_a_fresh_run_does() {
    let (_d, m) = tiny();
    let g = Generator::new(&m).unwrap();
    let c = cfg(5, 0.0);
    let mut session = Session::default();
    let turn1 = vec![1u32, 7, 9, 12];
    let a = g
        .generate_in(&mut session, &turn1, &c, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(a.cached_tokens, 0);
    // The next prompt repeats the first turn and its answer, then adds a new message.
    let mut turn2 = turn1.clone();
    turn2.extend(&a.tokens);
    turn2.extend([30, 5]);
    let b = g
        .generate_in(&mut session, &turn2, &c, &mut |_| Ok(()))
        .unwrap();
    // Every token run before is reused: the prompt and all but the last answer token (the
    // last was sampled, never run).
    assert_eq!(b.cached_tokens, turn1.len() + a.tokens.len() - 1);
    let fresh = g.generate(&turn2, &c, &mut |_| Ok(())).unwrap();
    assert_eq!(b.tokens, fresh.tokens);
    // A prompt that departs from the conversation early keeps only the shared start.
    let other = vec![1u32, 7, 3, 3];
    let d = g
        .generate_in(&mut session, &other, &c, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(d.cached_tokens, 2);
    assert_eq!(
        d.tokens,
        g.generate(&other, &c, &mut |_| Ok(())).unwrap().tokens
    );
    // The same prompt again runs only its last token.
    let e = g
        .generate_in(&mut session, &other, &c, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(e.cached_tokens, other.len() - 1);
    assert_eq!(e.tokens, d.tokens);
}

#[test]
fn a_batch_generates_what_each_prompt_generates_alone() {
    let (_d, m) = tiny();
    let g = Generator::new(&m).unwrap();
    let prompts = vec![vec![1u32, 7, 9, 12, 4], vec![1u32, 30], vec![1u32, 8, 8, 3]];
    for temperature in [0.0, 1.0] {
        let c = cfg(5, temperature);
        let batch = g.generate_batch(&prompts, &c).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            // Row i of a batch samples from stream i; alone, a prompt is row 0.
            let alone = g.generate_batch(std::slice::from_ref(p), &c).unwrap();
            if temperature == 0.0 || i == 0 {
                assert_eq!(
                    batch[i].tokens, alone[0].tokens,
                    "prompt {i}, T={temperature}"
                );
            }
        }
    }
    let a = g
        .generate(&prompts[0], &cfg(8, 1.0), &mut |_| Ok(()))
        .unwrap();
    let b = g
        .generate(&prompts[0], &cfg(8, 1.0), &mut |_| Ok(()))
        .unwrap();
    assert_eq!(a.tokens, b.tokens, "same seed, same sample");
}

#[test]
fn stop_tokens_and_strings_end_generation() {
    let (_d, m) = tiny();
    let g = Generator::new(&m).unwrap();
    let prompt = vec![1u32, 7, 9];
    let free = g.generate(&prompt, &cfg(6, 0.0), &mut |_| Ok(())).unwrap();
    let mut c = cfg(6, 0.0);
    c.stop_tokens = vec![free.tokens[2]];
    let stopped = g.generate(&prompt, &c, &mut |_| Ok(())).unwrap();
    let first = free
        .tokens
        .iter()
        .position(|&t| t == free.tokens[2])
        .unwrap();
    assert_eq!(stopped.tokens, free.tokens[..first].to_vec());
    assert_eq!(stopped.stop, tuna_lm::StopReason::StopToken);
    // A stop string taken from the free text: the text ends right before it, and what was
    // streamed is exactly the final text.
    let text = free.text.clone();
    let cut = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map(|(i, _)| i)
        .unwrap();
    let stop: String = text[cut..].chars().take(2).collect();
    let mut c = cfg(6, 0.0);
    c.stop_strings = vec![stop.clone()];
    let mut streamed = String::new();
    let out = g
        .generate(&prompt, &c, &mut |p| {
            streamed.push_str(p);
            Ok(())
        })
        .unwrap();
    assert_eq!(out.stop, tuna_lm::StopReason::StopString);
    assert_eq!(out.text, text[..text.find(&stop).unwrap()]);
    assert_eq!(streamed, out.text);
}

#[test]
fn scores_are_log_probabilities_of_the_full_forward() {
    let (_d, m) = tiny();
    let mut s = Scorer::new(&m).unwrap();
    s.batch_size = 2;
    let items = vec![
        Candidate {
            context: vec![1, 7, 9],
            continuation: vec![12, 4],
        },
        Candidate {
            context: vec![1, 30],
            continuation: vec![5],
        },
        Candidate {
            context: vec![1, 8, 8, 3, 9],
            continuation: vec![6, 7, 2],
        },
    ];
    let got = s.score(&items).unwrap();
    for (c, ll) in items.iter().zip(&got) {
        let mut seq = c.context.clone();
        seq.extend(&c.continuation);
        let logits = m.logits(&seq).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let want: f32 = c
            .continuation
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                logp.i((c.context.len() - 1 + j, t as usize))
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .sum();
        assert!((ll.sum - want as f64).abs() < 1e-3, "{} vs {want}", ll.sum);
        assert_eq!(ll.tokens, c.continuation.len());
    }
}

#[test]
fn icl_classifies_every_query_with_demonstrations_from_the_pool() {
    let (_d, m) = tiny();
    let labels = vec!["bad".to_string(), "good".to_string()];
    let t = PromptTemplate::new(
        "Review: {text}\\nSentiment: {label}",
        &labels,
        &Default::default(),
    )
    .unwrap();
    let pool = Pool {
        texts: vec!["a great film", "awful movie", "love it", "boring"],
        labels: vec![1, 0, 1, 0],
    };
    for calibrate in [false, true] {
        let settings = IclSettings {
            calibrate,
            queries_per_batch: 2,
            ..Default::default()
        };
        let clf = IclClassifier::new(&m, &t, &labels, settings).unwrap();
        let picker = DemoPicker::new(Selection::Balanced, 2, 1, &pool.labels, 2).unwrap();
        let queries = ["good fun", "bad", "hate this"];
        let mut seen = 0;
        let out = clf
            .classify(&queries, &pool, &picker, None, &mut |n| seen = n)
            .unwrap();
        assert_eq!(seen, 3);
        assert_eq!(out.len(), 3);
        for p in &out {
            assert_eq!(p.demos.len(), 2);
            assert_eq!(p.scores.len(), 2);
            assert!(p.scores.iter().all(|s| s.is_finite()));
            assert!(p.prompt.ends_with("Sentiment:"), "{}", p.prompt);
            assert_eq!(p.continuations, vec![" bad", " good"]);
        }
    }
}
