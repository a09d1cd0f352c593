//! Continuous batching on a tiny random Llama written in-process: rows that join a running
//! batch at different steps, with their own lengths and settings, and leave it when they end or
//! are removed, generate what each prompt generates alone.

use candle_core::Device;
use std::collections::HashMap;
use tuna_lm::{DecodeBatch, GenerateConfig, Generator, Sampling};
use tuna_models::load_model;

fn cfg(n: usize, temperature: f64, seed: u64) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: n,
        sampling: Sampling {
            temperature,
            top_k: None,
            top_p: None,
            seed,
        },
        stop_strings: vec![],
        stop_tokens: vec![],
    }
}

#[test]
fn rows_joining_and_leaving_generate_what_they_generate_alone() {
    let dir = tempfile::tempdir().unwrap();
    tuna_models::testing::write_tiny_llama(dir.path(), 3).unwrap();
    let m = load_model(dir.path(), &Device::Cpu).unwrap();
    let g = Generator::new(&m).unwrap();
    // (key, prompt, settings, the step it joins at)
    let rows = [
        (0u32, vec![1u32, 7, 9, 12, 4], cfg(9, 0.0, 1), 0usize),
        (1, vec![1, 30], cfg(4, 0.0, 1), 0),
        (2, vec![1, 8, 8, 3, 5, 6, 2, 9, 11], cfg(6, 1.0, 7), 2),
        (3, vec![1, 5], cfg(1, 0.0, 1), 3),
        (4, vec![1, 2, 3], cfg(7, 0.8, 3), 5),
    ];
    let mut batch = DecodeBatch::default();
    let mut got: HashMap<u32, (String, Vec<u32>)> = HashMap::new();
    let mut step = 0;
    while step < 30 {
        for (key, prompt, c, at) in &rows {
            if *at == step {
                let e = batch.join(&g, *key, prompt, c).unwrap();
                let slot = got.entry(e.key).or_default();
                slot.0.push_str(&e.text);
                if let Some(done) = e.done {
                    slot.1 = done.tokens;
                }
            }
        }
        for e in batch.step(&g).unwrap() {
            let slot = got.entry(e.key).or_default();
            slot.0.push_str(&e.text);
            if let Some(done) = e.done {
                assert_eq!(done.text, slot.0, "row {}: streamed text", e.key);
                slot.1 = done.tokens;
            }
        }
        step += 1;
    }
    assert!(batch.is_empty());
    for (key, prompt, c, _) in &rows {
        let alone = g.generate(prompt, c, &mut |_| Ok(())).unwrap();
        assert_eq!(got[key].1, alone.tokens, "row {key}");
        assert_eq!(got[key].0, alone.text, "row {key}");
    }
    // A removed row leaves; the others go on.
    let mut batch = DecodeBatch::default();
    batch.join(&g, 0u32, &rows[0].1, &rows[0].2).unwrap();
    batch.join(&g, 1, &rows[2].1, &rows[0].2).unwrap();
    batch.step(&g).unwrap();
    assert_eq!(batch.remove(|k| k == 1).unwrap(), 1);
    assert_eq!(batch.keys(), vec![0]);
    let mut tokens = Vec::new();
    while !batch.is_empty() {
        for e in batch.step(&g).unwrap() {
            if let Some(done) = e.done {
                tokens = done.tokens;
            }
        }
    }
    let alone = g.generate(&rows[0].1, &rows[0].2, &mut |_| Ok(())).unwrap();
    assert_eq!(tokens, alone.tokens);
}
