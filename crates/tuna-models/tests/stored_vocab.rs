//! A quantised GGUF keeps its token embedding (tied to the output layer here) in its stored
//! type: lookups decode only the looked-up rows, the output layer's products and gradients run
//! on the stored blocks, and a training step equals the one on the same file decoded to f32 at
//! load. A method that trains the embedding decodes it first.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor, Var};
use tuna_models::network::Network;
use tuna_models::testing::{relative_max_diff, write_tiny_llama_gguf};
use tuna_models::{load_model, Ctx, Model};

fn load(path: &std::path::Path, f32: bool) -> Model {
    tuna_models::registry::set_stored_as_f32(f32);
    let m = load_model(path, &Device::Cpu).unwrap();
    tuna_models::registry::set_stored_as_f32(false);
    m
}

/// How many (vocabulary, hidden) weights are kept in their stored type.
fn stored_vocab(m: &mut Model) -> usize {
    let mut n = 0;
    m.network
        .vocab_weights(&mut |_, w| {
            n += w.is_quantised() as usize;
            Ok(())
        })
        .unwrap();
    n
}

/// The final norm as a variable, and the gradient of the summed response log-probabilities
/// (embedding -> blocks -> norm -> output layer) with respect to it, with the log-probabilities.
fn norm_gradient(m: &mut Model, ids: &[u32]) -> (Tensor, Tensor) {
    let mut var = None;
    m.network
        .visit(&mut |name, t| {
            if name == "model.norm.weight" {
                let v = Var::from_tensor(t)?;
                *t = v.as_tensor().clone();
                var = Some(v);
            }
            Ok(())
        })
        .unwrap();
    let var = var.unwrap();
    let Network::Llama(l) = &m.network else {
        panic!("a Llama")
    };
    let x = Tensor::new(&ids[..ids.len() - 1], &Device::Cpu).unwrap();
    let h = l
        .forward(&x.unsqueeze(0).unwrap(), &mut Ctx::default())
        .unwrap();
    let h = h.squeeze(0).unwrap();
    let (logp, _) = l.token_logprobs(&h, &ids[1..], false).unwrap();
    let g = logp.sum_all().unwrap().backward().unwrap();
    (logp, g.get(var.as_tensor()).unwrap().clone())
}

#[test]
fn stored_embedding_and_head_match_decoding_at_load() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
        let path = dir.path().join(format!("tiny-{dtype:?}.gguf"));
        write_tiny_llama_gguf(&path, 11, dtype).unwrap();
        let (mut decoded, mut stored) = (load(&path, true), load(&path, false));
        assert_eq!(
            stored_vocab(&mut stored),
            1,
            "{dtype:?}: the tied embedding"
        );
        assert_eq!(stored_vocab(&mut decoded), 0, "{dtype:?}: --dtype f32");
        let ids = stored
            .tokenizer
            .encode_raw("the thin theme in the tin")
            .unwrap();
        let x = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap();
        let (a, b) = (
            decoded.network.embed(&x).unwrap(),
            stored.network.embed(&x).unwrap(),
        );
        let d: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0, "{dtype:?}: looked-up rows are the decoded rows");
        let (lp_a, g_a) = norm_gradient(&mut decoded, &ids);
        let (lp_b, g_b) = norm_gradient(&mut stored, &ids);
        let d = relative_max_diff(&lp_a, &lp_b).unwrap();
        assert!(d < 1e-4, "{dtype:?}: log-probabilities differ by {d}");
        // On AVX-512 VNNI the stored products round their inputs to 16 bits per block of 32
        // (`tuna_nn::quant`), about 1e-4 of the gradient through the tiny model's layers.
        let d = relative_max_diff(&g_a, &g_b).unwrap();
        assert!(
            d < 5e-4,
            "{dtype:?}: a training step's gradient differs by {d}"
        );
    }
}

/// Decoding the embedding of a tied model (what full finetuning asks for) makes it a tensor
/// again, visited and shared with the output layer, with the decoded model's logits.
#[test]
fn a_trained_embedding_is_decoded_and_stays_tied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&path, 5, GgmlDType::Q8_0).unwrap();
    let (decoded, mut stored) = (load(&path, true), load(&path, false));
    let named = |m: &mut Model| {
        let mut seen = false;
        m.network
            .visit(&mut |name, _| {
                seen |= name == "model.embed_tokens.weight";
                Ok(())
            })
            .unwrap();
        seen
    };
    assert!(!named(&mut stored), "a stored embedding is not a tensor");
    stored
        .network
        .dequantise_where(&|n| n == "model.embed_tokens.weight")
        .unwrap();
    assert_eq!(stored_vocab(&mut stored), 0);
    assert!(named(&mut stored));
    let ids = stored.tokenizer.encode_raw("the thin theme").unwrap();
    let (a, b) = (decoded.logits(&ids).unwrap(), stored.logits(&ids).unwrap());
    let d = relative_max_diff(&a, &b).unwrap();
    // The blocks still stored: their products' inputs rounded to 16 bits on AVX-512 VNNI.
    assert!(d < 5e-4, "logits differ by {d}");
    // With the blocks decoded too, the output layer is the decoded table: the same logits.
    stored.network.dequantise().unwrap();
    let d = relative_max_diff(&a, &stored.logits(&ids).unwrap()).unwrap();
    assert!(d < 1e-6, "logits differ by {d} once everything is decoded");
}
