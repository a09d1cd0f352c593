//! How the CLI reads data, on a tiny BERT and small generated files: encodings, several text
//! columns, folders of class folders, bad rows, duplicates between parts, the columns chosen,
//! stratified limits, texts cut at the token limit.

use std::path::Path;
use tuna_models::testing::{write_tiny_bert, write_tiny_llama};

mod common;
use common::{ok, tuna};

const SPAM: [&str; 3] = [
    "free cash prize now",
    "win a free prize call now",
    "cash prize text stop",
];
const HAM: [&str; 3] = [
    "hi how are you",
    "see you later",
    "love the film it was fun",
];

/// `(label, text)` rows, `n` per class, alternating, each text made distinct by a number.
fn rows(n: usize) -> Vec<(&'static str, String)> {
    (0..n)
        .flat_map(|i| {
            [
                ("spam", format!("{} {i}", SPAM[i % 3])),
                ("ham", format!("{} {i}", HAM[i % 3])),
            ]
        })
        .collect()
}

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_bert(&tmp.path().join("model"), "bert", 5).unwrap();
    tmp
}

fn train(d: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train", "--method", "features", "--model", "model", "--out", "run",
    ];
    args.extend_from_slice(extra);
    args.extend(["--overwrite", "--json"]);
    tuna(d, &args)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_windows_1252_file_names_the_way_forward_and_reads_with_encoding() {
    let tmp = setup();
    let d = tmp.path();
    let mut bytes = Vec::new();
    for (label, text) in rows(12) {
        bytes.extend_from_slice(format!("{label}\t{text} caf").as_bytes());
        bytes.extend_from_slice(b"\xe9 \x93ok\x94\n");
    }
    std::fs::write(d.join("sms.tsv"), bytes).unwrap();
    let out = train(d, &["--data", "sms.tsv"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("sms.tsv line 1: not valid UTF-8 (byte 0xE9)")
            && err.contains("--encoding windows-1252"),
        "{err}"
    );
    ok(&train(
        d,
        &["--data", "sms.tsv", "--encoding", "windows-1252"],
    ));
}

#[test]
fn several_text_columns_are_joined_and_the_columns_read_are_printed() {
    let tmp = setup();
    let d = tmp.path();
    let mut csv = String::from("id,title,description,category\n");
    for (i, (label, text)) in rows(12).into_iter().enumerate() {
        let (title, desc) = text.split_at(text.find(' ').unwrap());
        csv.push_str(&format!("{i},{title},{},{label}\n", desc.trim()));
    }
    std::fs::write(d.join("news.csv"), &csv).unwrap();
    // Three candidate columns and no `text` header: nothing to detect.
    let out = train(d, &["--data", "news.csv"]);
    assert!(
        stderr(&out).contains("no text column found"),
        "{}",
        stderr(&out)
    );
    let out = train(
        d,
        &["--data", "news.csv", "--text-col", "title,description"],
    );
    ok(&out);
    let said = stdout(&out);
    assert!(
        said.contains(
            "news.csv: csv, a header row (detected); text: \"title\" + \"description\"; label: \"category\" (detected)"
        ),
        "{said}"
    );
    // The same with the flag repeated, and a detected layout printed too.
    ok(&train(
        d,
        &[
            "--data",
            "news.csv",
            "--text-col",
            "title",
            "--text-col",
            "2",
        ],
    ));
    std::fs::write(
        d.join("sms.tsv"),
        "ham\thi there\nspam\tfree cash\n".repeat(10),
    )
    .unwrap();
    let said = stdout(&ok_out(&train(d, &["--data", "sms.tsv"])));
    assert!(
        said.contains(
            "sms.tsv: tsv, no header row (detected); text: column 1; label: column 0 (detected)"
        ),
        "{said}"
    );
}

#[test]
fn a_folder_of_class_folders_is_a_dataset() {
    let tmp = setup();
    let d = tmp.path();
    for (i, (label, text)) in rows(10).into_iter().enumerate() {
        let dir = d.join("corpus").join(label);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{i:03}.txt")), text).unwrap();
    }
    let j = ok(&train(d, &["--data", "corpus"]));
    assert_eq!(j["test"]["n"], 2, "{j}");
    let out = train(d, &["--data", "corpus"]);
    assert!(stdout(&out).contains("a folder of 2 class folders (the labels), 20 text files"));
}

#[test]
fn every_bad_row_is_reported_and_skip_bad_rows_says_how_many() {
    let tmp = setup();
    let d = tmp.path();
    let mut tsv = String::new();
    for (i, (label, text)) in rows(15).into_iter().enumerate() {
        let text = if i % 7 == 3 { "   ".to_string() } else { text };
        tsv.push_str(&format!("{label}\t{text}\n"));
    }
    std::fs::write(d.join("sms.tsv"), tsv).unwrap();
    let out = train(d, &["--data", "sms.tsv"]);
    let err = stderr(&out);
    // Before, only line 4 was reported.
    assert!(
        err.contains("4 rows cannot be read: line 4: empty text; line 11: empty text; line 18: empty text; line 25: empty text")
            && err.contains("--skip-bad-rows"),
        "{err}"
    );
    let said = stdout(&ok_out(&train(
        d,
        &["--data", "sms.tsv", "--skip-bad-rows"],
    )));
    assert!(
        said.contains(
            "sms.tsv: 4 bad rows left out (--skip-bad-rows), the first: line 4: empty text"
        ),
        "{said}"
    );
}

#[test]
fn exact_duplicates_between_train_and_test_are_counted() {
    let tmp = setup();
    let d = tmp.path();
    let write = |name: &str, rows: &[(&str, String)]| {
        let s: String = rows.iter().map(|(l, t)| format!("{l}\t{t}\n")).collect();
        std::fs::write(d.join(name), s).unwrap();
    };
    let all = rows(12);
    write("train.tsv", &all);
    let mut test = all[..3].to_vec();
    test.extend(rows(20)[24..29].iter().cloned());
    write("test.tsv", &test);
    let said = stdout(&ok_out(&train(
        d,
        &["--train", "train.tsv", "--test", "test.tsv"],
    )));
    assert!(
        said.contains("warning: 3 of the 8 test texts are exact duplicates of training texts"),
        "{said}"
    );
}

#[test]
fn texts_cut_at_the_token_limit_are_counted_once() {
    let tmp = setup();
    let d = tmp.path();
    let s: String = rows(12)
        .into_iter()
        .enumerate()
        .map(|(i, (l, t))| {
            if i % 4 == 0 {
                format!("{l}\t{t} {t} {t}\n")
            } else {
                format!("{l}\t{t}\n")
            }
        })
        .collect();
    std::fs::write(d.join("sms.tsv"), s).unwrap();
    let out = ok_out(&train(
        d,
        &["--data", "sms.tsv", "--max-len", "8", "--no-cache"],
    ));
    let said = stdout(&out);
    let notes: Vec<&str> = said.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 1, "{said}");
    assert!(
        notes[0].contains("texts were longer than 8 tokens and cut to 8"),
        "{said}"
    );
    let j = common::last_json(&out);
    assert!(j["truncated"][0]["texts"].as_u64().unwrap() >= 6, "{j}");
}

fn ok_out(o: &std::process::Output) -> std::process::Output {
    ok(o);
    o.clone()
}

#[test]
fn icl_limit_draws_every_class_not_the_first_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_tiny_llama(&d.join("lm"), 4).unwrap();
    let train: String = rows(4).iter().map(|(l, t)| format!("{l}\t{t}\n")).collect();
    std::fs::write(d.join("train.tsv"), train).unwrap();
    // The test file is sorted by class: its first 6 rows are all spam.
    let mut test: Vec<(&str, String)> = rows(6);
    test.sort_by_key(|r| r.0 == "ham");
    let test: String = test.iter().map(|(l, t)| format!("{l}\t{t}\n")).collect();
    std::fs::write(d.join("test.tsv"), test).unwrap();
    let args = [
        "icl",
        "-m",
        "lm",
        "--train",
        "train.tsv",
        "--test",
        "test.tsv",
        "--template",
        "{text} => {label}",
        "--limit",
        "6",
        "--dump",
        "dump.jsonl",
        "--json",
    ];
    ok(&tuna(d, &args));
    let gold: Vec<String> = std::fs::read_to_string(d.join("dump.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["gold"].to_string())
        .collect();
    let spam = gold.iter().filter(|g| g.contains("spam")).count();
    assert_eq!((gold.len(), spam), (6, 3), "{gold:?}");
}

#[test]
fn embed_says_how_it_read_its_input() {
    let tmp = setup();
    let d = tmp.path();
    std::fs::write(d.join("in.csv"), "text,label\nhi there,1\nfree cash,\n").unwrap();
    let out = ok_out(&tuna(
        d,
        &["embed", "--model", "model", "--input", "in.csv", "--json"],
    ));
    let said = stdout(&out);
    assert!(
        said.contains("read in.csv: csv, a header row (detected); text: \"text\"; label: \"label\" (detected)"),
        "{said}"
    );
}
