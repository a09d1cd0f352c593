//! One test suite, run against both stores: SQLite (a temp file) and PostgreSQL (the server in
//! `TUNA_TEST_POSTGRES`, a `postgres://` URL; scripts/test.sh starts one. Without it the
//! PostgreSQL half is skipped, except under CI, where it fails).

use std::path::PathBuf;
use tuna_rag::{
    add_documents, load_documents, open, ChunkConfig, Document, Embedder, IndexMeta, Result, Store,
};

const DIM: usize = 256;

/// Bag-of-words vectors (hashed words), and whitespace tokens: enough to test the stores.
struct Words;

impl Embedder for Words {
    fn dim(&self) -> usize {
        DIM
    }

    fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        Ok(tuna_rag::chunk::whitespace_spans(text))
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| words_vector(t)).collect())
    }
}

fn words_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for w in text.split_whitespace() {
        let w = w
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        let h = w.bytes().fold(1469598103934665603u64, |h, b| {
            (h ^ b as u64).wrapping_mul(1099511628211)
        });
        v[(h % DIM as u64) as usize] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    v.iter().map(|x| x / n).collect()
}

fn meta() -> IndexMeta {
    IndexMeta {
        model: "words".into(),
        fingerprint: "test".into(),
        probe: words_vector(tuna_rag::store::PROBE_TEXT),
        dim: DIM,
        pooling: "none".into(),
        chunking: chunking(),
    }
}

fn chunking() -> ChunkConfig {
    ChunkConfig {
        size: 12,
        overlap: 3,
    }
}

fn doc(source: &str, text: &str) -> Document {
    Document {
        source: source.into(),
        title: None,
        text: text.into(),
    }
}

fn corpus() -> Vec<Document> {
    vec![
        doc(
            "a/cats.txt",
            "Cats purr and sleep in the sun all afternoon.",
        ),
        doc(
            "a/dogs.txt",
            "Dogs bark at the mailman and fetch sticks in the park.",
        ),
        doc(
            "b/long.txt",
            "Rivers carry water to the sea.\n\nMountains are high and cold with snow on top.\n\n\
             Deserts are dry and hot with sand dunes and rare rain showers in spring.",
        ),
    ]
}

fn add(store: &mut dyn Store, docs: &[Document]) -> tuna_rag::AddReport {
    add_documents(store, docs, &Words, &chunking(), &mut |_, _| {}).unwrap()
}

/// Each test gets a fresh index in each available store: its name (a SQLite file or a
/// `postgres://` URL with the index after `#`) and the folder to keep while it is used.
fn specs(name: &str) -> Vec<(String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("index.db").display().to_string();
    let mut out = vec![(sqlite, Some(dir))];
    match std::env::var("TUNA_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => {
            let index = format!("t_{name}");
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.batch_execute(&format!(
                "DROP TABLE IF EXISTS tuna_{index}_chunks, tuna_{index}_docs, tuna_{index}_meta"
            ))
            .unwrap();
            out.push((format!("{url}#{index}"), None));
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must test PostgreSQL: set TUNA_TEST_POSTGRES (scripts/test.sh does)"
            );
            eprintln!("TUNA_TEST_POSTGRES not set: PostgreSQL half skipped");
        }
    }
    out
}

/// Each test gets a fresh index in each available store, opened.
fn stores(name: &str) -> Vec<(Box<dyn Store>, Option<tempfile::TempDir>)> {
    specs(name)
        .into_iter()
        .map(|(spec, keep)| (open(&spec).unwrap(), keep))
        .collect()
}

/// The words embedder, slowed down so that two writers surely overlap.
struct SlowWords;

impl Embedder for SlowWords {
    fn dim(&self) -> usize {
        DIM
    }

    fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        Words.token_spans(text)
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        std::thread::sleep(std::time::Duration::from_millis(100));
        Words.embed(texts)
    }
}

/// `n` documents of about 60 words: a few batches of chunks.
fn many_docs(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            let text: Vec<String> = (0..60)
                .map(|j| format!("w{}", (i * 31 + j * 7) % 500))
                .collect();
            doc(&format!("many/{i}.txt"), &text.join(" "))
        })
        .collect()
}

/// What `tuna index add` does: the writer lock, then the metadata, then the documents.
fn add_as_a_writer(spec: &str, docs: &[Document], waited: &mut bool) -> tuna_rag::AddReport {
    let mut s = open(spec).unwrap();
    s.lock_writer(&mut || *waited = true).unwrap();
    if s.meta().unwrap().is_none() {
        s.init(&meta()).unwrap();
    }
    add_documents(s.as_mut(), docs, &SlowWords, &chunking(), &mut |_, _| {}).unwrap()
}

#[test]
fn concurrent_writers_take_turns_and_the_second_skips_the_firsts_documents() {
    let docs = many_docs(120);
    for (spec, _keep) in specs("concurrent") {
        let barrier = std::sync::Barrier::new(2);
        let (a, b) = std::thread::scope(|sc| {
            let run = || {
                barrier.wait();
                let mut waited = false;
                let r = add_as_a_writer(&spec, &docs, &mut waited);
                (r, waited)
            };
            let a = sc.spawn(run);
            let b = sc.spawn(run);
            (a.join().unwrap(), b.join().unwrap())
        });
        // Before the lock both reported "added 120" and wrote every chunk twice.
        assert_eq!(a.0.added + b.0.added, 120, "{spec}: {a:?} {b:?}");
        assert!(a.1 != b.1, "exactly one writer waited: {a:?} {b:?}");
        let (first, second) = if a.1 { (b.0, a.0) } else { (a.0, b.0) };
        assert_eq!((first.added, first.unchanged), (120, 0), "{spec}");
        assert_eq!(
            (second.added, second.unchanged, second.chunks),
            (0, 120, 0),
            "{spec}"
        );
        let mut s = open(&spec).unwrap();
        let st = s.stats().unwrap();
        assert_eq!(
            (st.documents, st.chunks, st.vectors),
            (120, first.chunks, first.chunks)
        );
        drop(s);
        if let Some(dir) = &_keep {
            // The file is the size of one writer's work: a single add into a fresh file.
            let single = dir.path().join("single.db").display().to_string();
            let mut waited = false;
            add_as_a_writer(&single, &docs, &mut waited);
            let size = |p: &str| std::fs::metadata(p).unwrap().len();
            assert_eq!(size(&spec), size(&single), "no bloat");
        }
    }
}

#[test]
fn new_index_is_empty() {
    for (mut s, _keep) in stores("empty") {
        assert_eq!(s.meta().unwrap(), None, "{}", s.kind());
        assert!(s.search(&words_vector("cats"), 3).unwrap().is_empty());
        let st = s.stats().unwrap();
        assert_eq!((st.documents, st.chunks), (0, 0));
        s.init(&meta()).unwrap();
        assert_eq!(s.meta().unwrap(), Some(meta()));
    }
}

#[test]
fn add_then_search_finds_the_right_chunk() {
    for (mut s, _keep) in stores("search") {
        s.init(&meta()).unwrap();
        let r = add(s.as_mut(), &corpus());
        assert_eq!((r.added, r.updated, r.unchanged), (3, 0, 0), "{}", s.kind());
        let st = s.stats().unwrap();
        assert_eq!(st.documents, 3);
        assert_eq!(st.chunks, r.chunks);
        assert_eq!(st.vectors, r.chunks);
        assert_eq!(st.incomplete_documents, 0);
        assert!(r.chunks >= 5, "the long document is cut: {}", r.chunks);

        let q = "Dogs bark at the mailman and fetch sticks in the park.";
        let hits = s.search(&words_vector(q), 3).unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].source, "a/dogs.txt", "{}", s.kind());
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));

        let hits = s.search(&words_vector("snow on the mountains"), 1).unwrap();
        assert_eq!(hits[0].source, "b/long.txt");
        assert!(hits[0].text.contains("Mountains"), "{}", hits[0].text);
        assert!(s.search(&[1.0; 3], 1).is_err(), "wrong query dimension");
    }
}

#[test]
fn unchanged_documents_do_no_work_and_changed_ones_replace_their_chunks() {
    for (mut s, _keep) in stores("update") {
        s.init(&meta()).unwrap();
        add(s.as_mut(), &corpus());
        let before = s.stats().unwrap();
        let again = add(s.as_mut(), &corpus());
        assert_eq!((again.unchanged, again.chunks), (3, 0), "{}", s.kind());
        assert_eq!(s.stats().unwrap(), before);

        let mut docs = corpus();
        docs[0].text = "Cats hunt mice at night.".into();
        let r = add(s.as_mut(), &docs);
        assert_eq!((r.added, r.updated, r.unchanged), (0, 1, 2));
        let st = s.stats().unwrap();
        assert_eq!(st.documents, 3);
        assert_eq!(st.chunks, before.chunks, "one chunk replaced by one chunk");
        let hits = s
            .search(&words_vector("Cats hunt mice at night."), 10)
            .unwrap();
        assert!(
            hits.iter().all(|h| !h.text.contains("purr")),
            "old chunk gone"
        );
        assert_eq!(hits[0].text, "Cats hunt mice at night.");
    }
}

#[test]
fn delete_by_name_file_or_directory() {
    for (mut s, _keep) in stores("delete") {
        s.init(&meta()).unwrap();
        add(s.as_mut(), &corpus());
        let all = s.hashes().unwrap();
        let names = tuna_rag::store::matching_sources(all.keys(), "a");
        assert_eq!(names, ["a/cats.txt", "a/dogs.txt"]);
        assert_eq!(s.delete(&names).unwrap(), 2, "{}", s.kind());
        let st = s.stats().unwrap();
        assert_eq!(st.documents, 1);
        assert_eq!(st.vectors, st.chunks);
        let hits = s.search(&words_vector("cats purr"), 10).unwrap();
        assert!(hits.iter().all(|h| h.source == "b/long.txt"));
        assert_eq!(s.delete(&["nothing".into()]).unwrap(), 0);
    }
}

#[test]
fn vectors_of_the_wrong_dimension_are_refused_and_nothing_is_written() {
    for (mut s, _keep) in stores("dims") {
        s.init(&meta()).unwrap();
        let bad = tuna_rag::DocEntry {
            source: "x".into(),
            title: None,
            hash: "h".into(),
            chunks: vec![tuna_rag::NewChunk {
                seq: 0,
                text: "x".into(),
                start: 0,
                end: 1,
                vector: vec![0.0; DIM + 1],
            }],
        };
        assert!(s.put(&[bad]).is_err(), "{}", s.kind());
        assert_eq!(s.stats().unwrap().documents, 0);
    }
}

#[test]
fn reads_text_markdown_jsonl_and_squad_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| -> PathBuf { dir.path().join(n) };
    std::fs::write(p("a.txt"), "plain text").unwrap();
    std::fs::write(p("b.md"), "intro\n# The Title\n\nbody").unwrap();
    std::fs::write(
        p("c.jsonl"),
        "{\"id\": \"x1\", \"text\": \"first\", \"title\": \"T\"}\n\n{\"content\": \"second\"}\n",
    )
    .unwrap();
    std::fs::write(
        p("d.json"),
        r#"{"data": [{"title": "Some_Place", "paragraphs": [{"context": "P0", "qas": []}, {"context": "P1", "qas": []}]}]}"#,
    )
    .unwrap();
    std::fs::write(p("e.bin"), [0u8, 1, 2]).unwrap();
    std::fs::write(p("empty.txt"), "  \n").unwrap();
    let docs = load_documents(&[dir.path().to_path_buf()]).unwrap();
    let root = format!("{}/", dir.path().display());
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d.source.strip_prefix(&root).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "a.txt",
            "b.md",
            "c.jsonl#x1",
            "c.jsonl#3",
            "d.json#Some_Place/0",
            "d.json#Some_Place/1"
        ]
    );
    assert_eq!(docs[1].title.as_deref(), Some("The Title"));
    assert_eq!(docs[2].title.as_deref(), Some("T"));
    assert_eq!(docs[4].title.as_deref(), Some("Some Place"));
    assert_ne!(docs[4].hash(), docs[5].hash());
    let err = load_documents(&[p("c.json")]).unwrap_err().to_string();
    assert!(err.contains("c.json"), "{err}");
}
