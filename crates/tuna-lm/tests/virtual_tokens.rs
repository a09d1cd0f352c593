//! Generation behind an input method's virtual tokens on a tiny random Llama: with a prefix (per
//! block keys and values) or a soft prompt (embeddings before the prompt), greedy decoding
//! follows the argmax of the full forward pass the method trains with, a left-padded batch and a
//! continuous batch give what each prompt gives alone, and a session's cache keeps the virtual
//! positions.

use candle_core::{DType, Device, IndexOp, Tensor, D};
use tuna_lm::{DecodeBatch, GenerateConfig, Generator, Sampling, Session};
use tuna_models::llama::Llama;
use tuna_models::{load_model, Ctx, Model, Network, VirtualTokens};

fn tiny() -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    tuna_models::testing::write_tiny_llama(dir.path(), 4).unwrap();
    let m = load_model(dir.path(), &Device::Cpu).unwrap();
    (dir, m)
}

fn lm(m: &Model) -> &Llama {
    match &m.network {
        Network::Llama(lm) => lm,
        _ => panic!("not a Llama"),
    }
}

fn greedy(n: usize) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: n,
        sampling: Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 1,
        },
        stop_strings: vec![],
        stop_tokens: vec![],
    }
}

/// Three virtual positions of each kind, scaled so that they change what the model says.
fn virtual_tokens(m: &Model) -> [VirtualTokens; 2] {
    let lm = lm(m);
    let c = lm.config();
    let (p, dev) = (3, &Device::Cpu);
    let embeds = (Tensor::randn(0f32, 1.0, (p, c.hidden_size), dev).unwrap() * 2.0).unwrap();
    let shape = (1, c.kv_heads(), p, c.head_size());
    let past = (0..lm.num_layers())
        .map(|_| {
            let k = (Tensor::randn(0f32, 1.0, shape, dev).unwrap() * 3.0).unwrap();
            let v = (Tensor::randn(0f32, 1.0, shape, dev).unwrap() * 3.0).unwrap();
            (k, v)
        })
        .collect();
    [VirtualTokens::Embeds(embeds), VirtualTokens::Past(past)]
}

/// Logits (T, V) of `ids` through the training path: a prefix through `Ctx::prefix`, a soft
/// prompt prepended to the embeddings (its own positions dropped from the result).
fn full_logits(m: &Model, virt: &VirtualTokens, ids: &[u32]) -> Tensor {
    let lm = lm(m);
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut h = lm.embed(&x).unwrap();
    let mut ctx = Ctx::default();
    let mut skip = 0;
    match virt {
        VirtualTokens::Embeds(e) => {
            h = Tensor::cat(&[&e.unsqueeze(0).unwrap(), &h], 1).unwrap();
            skip = e.dim(0).unwrap();
        }
        VirtualTokens::Past(layers) => {
            ctx.position_offset = virt.len().unwrap();
            ctx.prefix = Some(layers.clone());
        }
    }
    let h = lm.run_blocks(&h, 0..lm.num_layers(), &mut ctx).unwrap();
    let h = h.narrow(1, skip, ids.len()).unwrap();
    lm.logits(&lm.final_norm(&h).unwrap())
        .unwrap()
        .i(0)
        .unwrap()
}

#[test]
fn greedy_decoding_behind_virtual_tokens_follows_the_training_forward() {
    let (_d, m) = tiny();
    let prompt = vec![1u32, 7, 9, 12];
    let plain = Generator::new(&m)
        .unwrap()
        .generate(&prompt, &greedy(8), &mut |_| Ok(()))
        .unwrap();
    for virt in virtual_tokens(&m) {
        let g = Generator::new(&m)
            .unwrap()
            .with_virtual_tokens(Some(virt.clone()));
        let out = g.generate(&prompt, &greedy(8), &mut |_| Ok(())).unwrap();
        assert_eq!(out.tokens.len(), 8);
        assert_eq!(out.prompt_tokens, prompt.len());
        let seq: Vec<u32> = prompt.iter().chain(&out.tokens).copied().collect();
        let argmax = full_logits(&m, &virt, &seq)
            .argmax(D::Minus1)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        assert_eq!(&argmax[prompt.len() - 1..seq.len() - 1], &out.tokens[..]);
        assert_ne!(
            out.tokens, plain.tokens,
            "the virtual tokens change nothing"
        );
    }
}

#[test]
fn a_batch_behind_virtual_tokens_generates_what_each_prompt_does_alone() {
    let (_d, m) = tiny();
    let prompts = vec![vec![1u32, 7, 9, 12, 4], vec![1u32, 30], vec![1u32, 8, 8, 3]];
    for virt in virtual_tokens(&m) {
        let g = Generator::new(&m).unwrap().with_virtual_tokens(Some(virt));
        let batch = g.generate_batch(&prompts, &greedy(6)).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            let alone = g.generate(p, &greedy(6), &mut |_| Ok(())).unwrap();
            assert_eq!(batch[i].tokens, alone.tokens, "prompt {i}");
        }
    }
}

#[test]
fn rows_joining_a_decode_batch_behind_virtual_tokens_generate_what_they_do_alone() {
    let (_d, m) = tiny();
    let prompts = [vec![1u32, 7, 9, 12, 4], vec![1u32, 30], vec![1u32, 8, 8, 3]];
    for virt in virtual_tokens(&m) {
        let g = Generator::new(&m).unwrap().with_virtual_tokens(Some(virt));
        let mut batch = DecodeBatch::default();
        let mut got = vec![Vec::new(); prompts.len()];
        for step in 0..20 {
            // Row i joins at step 2 i, while the earlier rows are decoding.
            if step % 2 == 0 && step / 2 < prompts.len() {
                let i = step / 2;
                let e = batch.join(&g, i, &prompts[i], &greedy(6)).unwrap();
                assert!(e.done.is_none());
            }
            for e in batch.step(&g).unwrap() {
                if let Some(done) = e.done {
                    got[e.key] = done.tokens;
                }
            }
        }
        for (i, p) in prompts.iter().enumerate() {
            let alone = g.generate(p, &greedy(6), &mut |_| Ok(())).unwrap();
            assert_eq!(got[i], alone.tokens, "row {i}");
        }
    }
}

#[test]
fn a_session_keeps_the_virtual_positions_ahead_of_the_conversation() {
    let (_d, m) = tiny();
    for virt in virtual_tokens(&m) {
        let g = Generator::new(&m).unwrap().with_virtual_tokens(Some(virt));
        let mut session = Session::default();
        let turn1 = vec![1u32, 7, 9];
        let a = g
            .generate_in(&mut session, &turn1, &greedy(4), &mut |_| Ok(()))
            .unwrap();
        let mut turn2 = turn1.clone();
        turn2.extend(&a.tokens);
        turn2.extend([30, 5]);
        let b = g
            .generate_in(&mut session, &turn2, &greedy(4), &mut |_| Ok(()))
            .unwrap();
        assert_eq!(b.cached_tokens, turn1.len() + a.tokens.len() - 1);
        let fresh = g.generate(&turn2, &greedy(4), &mut |_| Ok(())).unwrap();
        assert_eq!(b.tokens, fresh.tokens);
    }
}

#[test]
fn a_prompt_that_leaves_no_room_after_the_virtual_tokens_is_refused() {
    let (_d, m) = tiny();
    let [embeds, _] = virtual_tokens(&m);
    let g = Generator::new(&m)
        .unwrap()
        .with_virtual_tokens(Some(embeds));
    let max = lm(&m).config().max_position_embeddings;
    let long = vec![5u32; max - 2];
    let err = g
        .generate(&long, &greedy(2), &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("virtual tokens"), "{err}");
}
