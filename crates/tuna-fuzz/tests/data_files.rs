//! Mutated data files (CSV, TSV, JSONL, label-text lines), read as `tuna train`, `predict` and
//! `index add` read them, in UTF-8 and in Latin-1 with bad rows skipped.

mod common;

use common::outcome;
use std::path::PathBuf;
use tuna_data::{read_dataset, read_texts, Encoding, ReadOptions};
use tuna_fuzz::{Campaign, Mutator, Style};

const CSV: &str = "text,label\n\"Free entry, win a prize now!\",spam\nSee you at 5?,ham\n\
    \"He said \"\"hi\"\"\nthen left\",ham\nCALL NOW to claim,spam\nok then,ham\n";
const TSV: &str = "ham\tGo until jurong point, crazy..\nspam\tFree entry in 2 a wkly comp\n\
    ham\tOk lar... Joking wif u oni\nspam\tWINNER!! \"claim\" now\nham\tU dun say so early hor\n";
const JSONL: &str = "{\"text\": \"a gripping film\", \"label\": \"pos\"}\n{\"text\": \"dull and \
    long\", \"label\": \"neg\"}\n{\"text\": \"caf\\u00e9 scenes\", \"label\": \"pos\"}\n{\"text\": \
    \"meh\", \"label\": \"neg\"}\n";
const LABEL_TEXT: &str = "1 a stirring , funny and finally transporting re-imagining .\n\
    0 apparently reassembled from the cutting-room floor .\n1 the rock is destined to be great\n\
    0 it 's a bad sign\n";

/// CSV, JSON and line syntax, and bytes that are not UTF-8.
const DATA_TOKENS: &[&str] = &[
    "\"",
    ",",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "{",
    "}",
    "[",
    "]",
    ":",
    "\"text\": ",
    "\"label\": ",
    "\u{feff}",
    "\0",
    "\u{85}",
    "\u{2028}",
    "\"\"",
    ",,,,",
    "label,text\n",
    "é",
    "\\",
    "\\u",
];

fn fuzz_format(ext: &'static str, seed: &str) -> tuna_fuzz::Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join(format!("data.{ext}"));
    let name = format!("data_{ext}");
    let mutator = Mutator::new(Style::Text, DATA_TOKENS);
    let report = Campaign::new(name, 4000).run(&[seed.as_bytes().to_vec()], &mutator, move |b| {
        std::fs::write(&path, b).expect("write case");
        let first = read_dataset(&path, &ReadOptions::default());
        let lenient = ReadOptions {
            encoding: Encoding::Latin1,
            skip_bad_rows: true,
            ..ReadOptions::default()
        };
        let _ = read_dataset(&path, &lenient).map(|d| d.notes());
        let _ = read_texts(&path, Encoding::Windows1252);
        outcome(first)
    });
    report
}

#[test]
fn mutated_data_files_read_or_fail_cleanly() {
    let reports: Vec<_> = [
        ("csv", CSV),
        ("tsv", TSV),
        ("jsonl", JSONL),
        ("txt", LABEL_TEXT),
    ]
    .into_iter()
    .map(|(ext, seed)| (ext, fuzz_format(ext, seed)))
    .collect();
    for (ext, report) in &reports {
        report.assert_clean(&format!("data_{ext}"));
    }
}
