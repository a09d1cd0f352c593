//! `tuna merge --adapter RUN --gguf OUT.gguf`: a LoRA adapter from `tuna sft` on a tiny Llama
//! GGUF merged into a complete GGUF model, loaded back by tuna (its logits are the unmerged
//! adapter's, within what the stored type allows) and read by llama.cpp's own Python reader
//! (`gguf` from PyPI, through scripts/check_merged_gguf.py) when `TUNA_TEST_PYTHONPATH` names
//! where it is installed.

mod common;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use common::data::rlhf_setup as setup;
use common::{ok, python_check, tuna};
use std::path::Path;
use tuna_models::testing::write_tiny_llama_gguf;

/// A quick `tuna sft` of a tiny Llama GGUF (`lm.gguf`, stored `dtype`) into `d/sft`.
fn sft_on_gguf(d: &Path, dtype: GgmlDType) {
    write_tiny_llama_gguf(&d.join("lm.gguf"), 4, dtype).unwrap();
    let args = [
        "sft",
        "-m",
        "lm.gguf",
        "-d",
        "inst.json",
        "-o",
        "sft",
        "--train-batch",
        "4",
        "--max-len",
        "48",
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--samples",
        "0",
        "--json",
        "-q",
    ];
    ok(&tuna(d, &args));
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap();
    d.max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Logits of `ids` from `model` (f32 weights), with `adapter` attached unmerged when given.
fn logits(model: &Path, adapter: Option<&Path>, ids: &[u32]) -> Tensor {
    tuna_models::registry::set_stored_as_f32(true);
    let mut m = tuna_models::load_model(model, &Device::Cpu).unwrap();
    if let Some(a) = adapter {
        m = tuna_serve::with_lm_adapter(m, a).unwrap().model;
    }
    m.logits(ids).unwrap()
}

#[test]
fn a_lora_run_merges_into_a_gguf_model_that_loads_back_with_the_adapters_logits() {
    let tmp = setup();
    let d = tmp.path();
    sft_on_gguf(d, GgmlDType::F32);
    let ids = [1u32, 5, 9, 14, 20, 7, 3, 11];
    let unmerged = logits(&d.join("lm.gguf"), Some(&d.join("sft")), &ids);
    let base = logits(&d.join("lm.gguf"), None, &ids);
    let moved = max_abs(&unmerged, &base);
    let scale = unmerged
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    // Tolerances relative to the largest logit (11.6 here): the tiny random model (weights of
    // standard deviation 0.2) amplifies rounding; measured 1.1e-3 (f16), 2.7e-2 (q8_0) and
    // 0.27 (q4_k, stored as Q4_1: more than the adapter's own effect, 0.18).
    for (ty, rel) in [("f16", 3e-3f32), ("q8_0", 6e-2), ("q4_k", 0.5)] {
        let tol = rel * scale;
        let out = format!("m_{ty}.gguf");
        let args = [
            "merge",
            "--adapter",
            "sft",
            "--gguf",
            &out,
            "--type",
            ty,
            "--json",
            "-q",
        ];
        let j = ok(&tuna(d, &args));
        assert_eq!(j["format"], "gguf", "{j}");
        assert!(!d.join(format!("{out}.partial")).exists());
        let reported = j["max_logit_difference"].as_f64().unwrap() as f32;
        let merged = logits(&d.join(&out), None, &ids);
        let diff = max_abs(&unmerged, &merged);
        assert!(
            diff < tol && reported < tol,
            "{ty}: {diff} / {reported} > {tol}"
        );
        if ty == "f16" {
            // The adapter changed the model by more than the merge's error.
            assert!(
                moved > 20.0 * diff,
                "{ty}: adapter moved logits {moved}, merge error {diff}"
            );
        }
        // Our reader: the base's tensors, blocks in the chosen type (the tiny rows of 32 and
        // 64 values are not whole Q4_K blocks: Q4_1), norms in F32.
        let mut f = std::fs::File::open(d.join(&out)).unwrap();
        let c = Content::read(&mut f).unwrap();
        let want = match ty {
            "f16" => GgmlDType::F16,
            "q8_0" => GgmlDType::Q8_0,
            _ => GgmlDType::Q4_1,
        };
        assert_eq!(c.tensor_infos["blk.0.attn_q.weight"].ggml_dtype, want);
        assert_eq!(c.tensor_infos["blk.1.ffn_down.weight"].ggml_dtype, want);
        assert_eq!(
            c.tensor_infos["blk.0.attn_norm.weight"].ggml_dtype,
            GgmlDType::F32
        );
        assert_eq!(
            c.metadata["general.architecture"].to_string().unwrap(),
            "llama"
        );
        let rel_tol = match ty {
            "f16" => "1e-3",
            "q8_0" => "1e-2",
            _ => "0.1",
        };
        // llama.cpp's reader: metadata copied, weights = base + alpha/r * B @ A (4 heads, 2 KV).
        let args = [out.as_str(), "lm.gguf", "sft/adapter", "4", "2", rel_tol];
        if let Some(said) = python_check("check_merged_gguf.py", &args, d) {
            assert!(said.contains("\"ok\": true"), "{said}");
        }
    }
}

#[test]
fn merge_gguf_refuses_a_hugging_face_base_and_says_what_to_do() {
    let tmp = setup();
    let d = tmp.path();
    common::data::quick_sft(d);
    let out = tuna(
        d,
        &["merge", "--adapter", "sft", "-m", "lm", "--gguf", "x.gguf"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Hugging Face directory") && err.contains("RUN/model"),
        "{err}"
    );
    assert!(!d.join("x.gguf").exists());
    let out = tuna(
        d,
        &[
            "merge",
            "--adapter",
            "sft",
            "--gguf",
            "x.gguf",
            "--type",
            "q3_k",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("q3_k"), "{err}");
}
