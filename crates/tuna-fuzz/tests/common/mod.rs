//! What the reader tests share: the allocator, and using a model the way `tuna` does once it
//! has loaded.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::Path;
use tuna_fuzz::Outcome;
use tuna_models::{load_model, Family};

#[global_allocator]
static ALLOC: tuna_fuzz::CountingAlloc = tuna_fuzz::CountingAlloc;

/// Loads the model at `path` and, when that works, encodes a text and runs a forward pass (an
/// embedding for encoders, next-token logits for decoders): a file that loads must also run
/// or fail with an error.
pub fn load_and_run(path: &Path) -> Outcome {
    let device = candle_core::Device::Cpu;
    let result = load_model(path, &device).and_then(|m| {
        let ids = m.encode("the good movie was fun !", 16)?;
        match m.info.family {
            Family::Bert => {
                m.embed_ids(&[ids], m.info.family.default_pooling())?;
            }
            Family::Llama => {
                m.logits(&ids)?;
            }
        }
        Ok(())
    });
    outcome(result)
}

/// Any result as an outcome: Ok is accepted, an error refused with its message.
pub fn outcome<T, E: std::fmt::Display>(r: Result<T, E>) -> Outcome {
    match r {
        Ok(_) => Outcome::Accepted,
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// The files of a model directory, to copy into each case's directory.
pub fn read_dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("model dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("model file"))
        })
        .collect();
    files.sort();
    files
}
