//! The mutation fuzz suite of tuna's readers of untrusted input: safetensors and GGUF model
//! files, `config.json`, `tokenizer.json`, chat templates and data files.
//!
//! Each reader has a test (`tests/*.rs`) that starts from valid files (tiny models written by
//! `tuna_models::testing`, small data files), mutates them with seeded random edits
//! ([`Mutator`], drawing its choices through the `arbitrary` crate) and hands every mutant to
//! the reader as a user would. A [`Campaign`] asserts, for every case, that the reader returns
//! (a value or an error, never a panic), within a time budget, and without allocating more
//! than a bound (the [`CountingAlloc`] each test installs refuses anything past it). Inputs
//! that once failed are kept under `tests/fixtures/<reader>/` and replayed first.
//!
//! `TUNA_FUZZ_CASES` sets the number of cases per reader and `TUNA_FUZZ_SEED` the seed.

mod alloc;
mod campaign;
mod mutate;
mod rng;

pub use alloc::CountingAlloc;
pub use campaign::{Campaign, Outcome, Report};
pub use mutate::{Mutator, Style};
pub use rng::SplitMix;
