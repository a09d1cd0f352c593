//! Datasets for text classification: reading CSV, TSV, JSONL and label-text files (and folders
//! of class folders) in UTF-8 or another encoding into
//! [`Example`]s, label maps, stratified splits and balanced subsets, and metrics.
//!
//! ```no_run
//! use tuna_data::{evaluate, read_dataset, stratified_split, LabelMap, ReadOptions};
//! # fn main() -> Result<(), tuna_data::DataError> {
//! let ds = read_dataset("SMSSpamCollection".as_ref(), &ReadOptions::default())?;
//! let labels = LabelMap::from_dataset(&ds)?;
//! let y = labels.encode(&ds, "train")?;
//! let splits = stratified_split(&y, &"80/10/10".parse()?, 0);
//! let gold: Vec<usize> = splits.test.iter().map(|&i| y[i]).collect();
//! let metrics = evaluate(&gold, &gold, &labels);
//! println!("{}", metrics.to_markdown());
//! # Ok(()) }
//! ```
//!
//! Every error names the file, the 1-based line where there is one, and the cause.

#![warn(missing_docs)]

pub mod encoding;
pub mod error;
mod example;
mod folder;
pub mod format;
mod jsonl;
pub mod labels;
pub mod metrics;
pub mod overlap;
mod quotes;
pub mod read;
pub mod split;
mod table;

pub use encoding::Encoding;
pub use error::DataError;
pub use format::{detect_format, Column, Format, ReadOptions};
pub use labels::LabelMap;
pub use metrics::{evaluate, ClassMetrics, Metrics};
pub use overlap::shared_texts;
pub use read::{read_dataset, read_texts, Dataset, Example};
pub use split::{
    balanced_subset, seeded_subset, stratified_split, stratified_subset, SplitSpec, Splits,
};
