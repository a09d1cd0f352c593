//! Mutated GGUF files of a tiny Llama (F32, Q8_0 and Q4_1 weights), loaded and run as `tuna`
//! does.

mod common;

use candle_core::quantized::GgmlDType;
use common::load_and_run;
use tuna_fuzz::{Campaign, Mutator, Style};
use tuna_models::testing::write_tiny_llama_gguf;

#[test]
fn mutated_gguf_files_load_or_fail_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let seeds: Vec<Vec<u8>> = [GgmlDType::F32, GgmlDType::Q8_0, GgmlDType::Q4_1]
        .iter()
        .map(|&dtype| {
            let path = tmp.path().join(format!("seed-{dtype:?}.gguf"));
            write_tiny_llama_gguf(&path, 5, dtype).expect("tiny gguf");
            std::fs::read(&path).expect("seed")
        })
        .collect();
    let target = tmp.path().join("case.gguf");
    // The metadata (vocabulary, template, sizes) and tensor infos fill the first few KiB.
    let mutator = Mutator::new(Style::Binary { header: 8192 }, &[]);
    let report = Campaign::new("gguf", 6000).run(&seeds, &mutator, move |bytes| {
        std::fs::write(&target, bytes).expect("write case");
        load_and_run(&target)
    });
    report.assert_clean("gguf");
}
