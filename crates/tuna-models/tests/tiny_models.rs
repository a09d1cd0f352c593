//! Tiny random models through the real loaders: padding invariance, causality, and GGUF == HF.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor, D};
use tuna_models::load_model;
use tuna_models::testing::{
    relative_max_diff, stored_linears, write_tiny_bert, write_tiny_llama, write_tiny_llama_gguf,
};
use tuna_nn::Pooling;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
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
fn bert_embeddings_do_not_depend_on_batch_padding() {
    for flavor in ["bert", "distilbert"] {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_bert(dir.path(), flavor, 1).unwrap();
        let m = load_model(dir.path(), &Device::Cpu).unwrap();
        let short = "great film";
        let long = "this movie was not very good , it was boring and awful !";
        let alone = m.embed_texts(&[short], Pooling::Mean, 64).unwrap();
        let batched = m.embed_texts(&[long, short], Pooling::Mean, 64).unwrap();
        let d = max_abs_diff(&alone.squeeze(0).unwrap(), &batched.get(1).unwrap());
        assert!(d < 1e-5, "{flavor}: padding changed the embedding by {d}");
        let cls = m.embed_texts(&[long, short], Pooling::Cls, 64).unwrap();
        assert_eq!(cls.dims(), &[2, 32]);
        assert!(m.info.parameters > 10_000, "{}", m.info.parameters);
    }
}

#[test]
fn bert_truncates_to_max_len_keeping_sep() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), "bert", 2).unwrap();
    let m = load_model(dir.path(), &Device::Cpu).unwrap();
    let ids = m.tokenizer.encode("the good movie was fun", 4).unwrap();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], 2, "[CLS] first");
    assert_eq!(ids[3], 3, "[SEP] kept last");
}

fn llama_logits(m: &tuna_models::Model, ids: &[u32]) -> Tensor {
    m.logits(ids).unwrap()
}

#[test]
fn llama_gguf_matches_hf_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), 7).unwrap();
    let gguf = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&gguf, 7, GgmlDType::F32).unwrap();
    let hf = load_model(dir.path(), &Device::Cpu).unwrap();
    let gg = load_model(&gguf, &Device::Cpu).unwrap();
    for text in [
        "the thin cat",
        " the <|im_start|>user\nhi<|im_end|>",
        "Zürich 2024!",
    ] {
        assert_eq!(
            hf.tokenizer.encode_raw(text).unwrap(),
            gg.tokenizer.encode_raw(text).unwrap(),
            "{text:?}"
        );
    }
    let ids = hf
        .tokenizer
        .encode_raw("the thin theme in the tin")
        .unwrap();
    assert!(ids.len() > 5);
    let d = max_abs_diff(&llama_logits(&hf, &ids), &llama_logits(&gg, &ids));
    assert!(d < 1e-4, "GGUF and HF logits differ by {d}");
    assert!(gg
        .tokenizer
        .chat_template
        .as_deref()
        .unwrap_or("")
        .contains("im_start"));
    // Quantised storage stays close to the f32 weights.
    let q = dir.path().join("tiny-q8.gguf");
    write_tiny_llama_gguf(&q, 7, GgmlDType::Q8_0).unwrap();
    let gq = load_model(&q, &Device::Cpu).unwrap();
    let reference = llama_logits(&hf, &ids);
    let scale: f32 = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let dq = max_abs_diff(&reference, &llama_logits(&gq, &ids)) / scale;
    assert!(
        dq < 0.05,
        "Q8_0 logits drift {dq} relative to the largest logit"
    );
}

#[test]
fn llama_is_causal_and_padding_aware() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), 3).unwrap();
    let m = load_model(dir.path(), &Device::Cpu).unwrap();
    let a = m.tokenizer.encode_raw("the thin theme").unwrap();
    let mut b = a.clone();
    b.extend(m.tokenizer.encode_raw(" in the tin").unwrap());
    let la = llama_logits(&m, &a);
    let lb = llama_logits(&m, &b).narrow(0, 0, a.len()).unwrap();
    assert!(
        max_abs_diff(&la, &lb) < 1e-5,
        "future tokens leaked into the past"
    );
    let alone = m.embed_texts(&["the thin"], Pooling::Last, 64).unwrap();
    let batched = m
        .embed_texts(
            &["the thin theme in the tin", "the thin"],
            Pooling::Last,
            64,
        )
        .unwrap();
    assert!(max_abs_diff(&alone.squeeze(0).unwrap(), &batched.get(1).unwrap()) < 1e-5);
    let probs = candle_nn::ops::softmax(&la, D::Minus1)
        .unwrap()
        .sum(D::Minus1)
        .unwrap();
    let ones = Tensor::ones(a.len(), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(max_abs_diff(&probs, &ones) < 1e-4);
}

#[test]
fn errors_name_the_problem() {
    let err = load_model(std::path::Path::new("/no/such/model"), &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("/no/such/model"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
    let err = load_model(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") || err.contains("safetensors"),
        "{err}"
    );
    let llama = tempfile::tempdir().unwrap();
    write_tiny_llama(llama.path(), 1).unwrap();
    let cfg = std::fs::read_to_string(llama.path().join("config.json")).unwrap();
    let scaled = cfg.replacen(
        '{',
        r#"{"rope_scaling": {"rope_type": "llama3", "factor": 8.0},"#,
        1,
    );
    std::fs::write(llama.path().join("config.json"), scaled).unwrap();
    let err = load_model(llama.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("rope_scaling") && err.contains("config.json"),
        "{err}"
    );
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"not a gguf").unwrap();
    let err = load_model(&bad, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("bad.gguf"), "{err}");
}

#[test]
fn qwen2_uses_qkv_biases() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_llama(dir.path(), 11).unwrap();
    let ids = [5u32, 9, 40, 77, 3];
    let llama = load_model(dir.path(), &Device::Cpu).unwrap();
    let base = llama_logits(&llama, &ids);
    // The same weights as Qwen2, whose q/k/v projections carry biases.
    let st = dir.path().join("model.safetensors");
    let mut t = candle_core::safetensors::load(&st, &Device::Cpu).unwrap();
    let with_biases = |t: &mut std::collections::HashMap<String, Tensor>, value: f64| {
        for l in 0..2 {
            for (p, n) in [("q_proj", 32), ("k_proj", 16), ("v_proj", 16)] {
                let b = (Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap() * value)
                    .unwrap();
                t.insert(format!("model.layers.{l}.self_attn.{p}.bias"), b);
            }
        }
    };
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"llama\"", "\"qwen2\""),
    )
    .unwrap();
    with_biases(&mut t, 0.0);
    candle_core::safetensors::save(&t, &st).unwrap();
    let zero = llama_logits(&load_model(dir.path(), &Device::Cpu).unwrap(), &ids);
    assert!(
        max_abs_diff(&base, &zero) < 1e-5,
        "zero biases must not change the output"
    );
    with_biases(&mut t, 0.5);
    candle_core::safetensors::save(&t, &st).unwrap();
    let biased = llama_logits(&load_model(dir.path(), &Device::Cpu).unwrap(), &ids);
    assert!(max_abs_diff(&base, &biased) > 1e-3, "biases were ignored");
}

/// With every weight trainable (full finetuning: q/k/v fused on each call, attention on the
/// packed product), the hidden states equal the frozen path's and every weight of the blocks
/// gets a gradient.
#[test]
fn bert_training_path_matches_the_frozen_path() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), "bert", 3).unwrap();
    let mut m = load_model(dir.path(), &Device::Cpu).unwrap();
    let ids = ["a good film", "not a good film , boring and slow"]
        .map(|t| m.tokenizer.encode(t, 32).unwrap());
    let batch = tuna_models::tokenizer::pad_batch(&ids, m.tokenizer.pad_id, &Device::Cpu).unwrap();
    let frozen = m.hidden_states(&batch).unwrap();
    let mut vars = Vec::new();
    m.network
        .visit(&mut |name, t| {
            if name.contains("layer.") {
                let v = candle_core::Var::from_tensor(t)?;
                *t = v.as_tensor().clone();
                vars.push((name.to_string(), v));
            }
            Ok(())
        })
        .unwrap();
    let trained = m.hidden_states(&batch).unwrap();
    let d = max_abs_diff(&frozen, &trained);
    assert!(d < 1e-5, "training path differs by {d}");
    let grads = trained
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, v) in &vars {
        let g = grads
            .get(v)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let s: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(s > 0.0, "zero gradient for {name}");
    }
}

/// A quantised GGUF keeps its blocks' linear weights in their stored type by default, and its
/// logits equal those of the same file decoded to f32 at load (`--dtype f32`) to 1e-4 of the
/// largest logit: the products decode the same values, only the order of the sums differs.
#[test]
fn quantised_gguf_weights_stay_quantised_and_match_decoding_at_load() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_1, GgmlDType::F16] {
        let path = dir.path().join(format!("tiny-{dtype:?}.gguf"));
        write_tiny_llama_gguf(&path, 7, dtype).unwrap();
        tuna_models::registry::set_stored_as_f32(true);
        let mut decoded = load_model(&path, &Device::Cpu).unwrap();
        tuna_models::registry::set_stored_as_f32(false);
        let mut stored = load_model(&path, &Device::Cpu).unwrap();
        let count = |m: &mut tuna_models::Model| stored_linears(m).unwrap();
        let (q, all) = count(&mut stored);
        assert_eq!(
            q, all,
            "{dtype:?}: every block linear weight stays quantised"
        );
        assert_eq!(
            count(&mut decoded).0,
            0,
            "{dtype:?}: --dtype f32 decodes them"
        );
        let ids = stored
            .tokenizer
            .encode_raw("the thin theme in the tin")
            .unwrap();
        let (a, b) = (llama_logits(&decoded, &ids), llama_logits(&stored, &ids));
        let d = relative_max_diff(&a, &b).unwrap();
        assert!(
            d < 1e-4,
            "{dtype:?}: stored-type logits differ by {d} of the largest"
        );
        stored.network.dequantise().unwrap();
        assert_eq!(count(&mut stored).0, 0);
        let d = relative_max_diff(&a, &llama_logits(&stored, &ids)).unwrap();
        assert!(d < 1e-6, "{dtype:?}: decoded later differs by {d}");
    }
}
