//! `tuna index add | rm | stats | eval`: build an index from documents, delete from it, show
//! it, and measure its retrieval (recall@k, MRR) and, with a causal LM, its answers (exact
//! match, F1).

use crate::commands::ask::{AnswerArgs, Answerer};
use crate::output::Output;
use crate::retrieval::{IndexArgs, IndexEncoder};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tuna_lm::{GenerateConfig, Sampling};
use tuna_models::Model;
use tuna_rag::metrics::first_relevant_rank;
use tuna_rag::store::matching_sources;
use tuna_rag::{
    add_documents, exact_match, load_documents, load_questions, token_f1, ChunkConfig, Hit,
    IndexMeta, Question, RetrievalMetrics, RetrievalScore,
};
use tuna_train::Progress;

#[derive(Args)]
pub struct IndexCmd {
    #[command(subcommand)]
    action: IndexAction,
}

#[derive(Subcommand)]
enum IndexAction {
    /// Add documents (text, Markdown, JSONL, SQuAD JSON; directories are walked): cut into
    /// chunks, embed, store. Unchanged documents are skipped, changed ones replaced.
    Add(AddCmd),
    /// Delete documents: a source name, every record of a file, or everything under a folder.
    Rm(RmCmd),
    /// Show what an index holds and how it was built.
    Stats(StatsCmd),
    /// Measure retrieval (recall@1, recall@5, MRR) on questions with known relevant sources;
    /// with --answer-model also the answers (exact match, token F1).
    Eval(Box<EvalCmd>),
}

impl IndexCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        match self.action {
            IndexAction::Add(c) => c.run(out),
            IndexAction::Rm(c) => c.run(out),
            IndexAction::Stats(c) => c.run(out),
            IndexAction::Eval(c) => c.run(out),
        }
    }
}

#[derive(Args)]
pub struct AddCmd {
    #[command(flatten)]
    index: IndexArgs,
    /// The encoder (required for a new index; an existing index keeps its own).
    #[arg(long, short)]
    model: Option<String>,
    /// Files or folders to add.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Most tokens per chunk (a new index; fits the encoder's 256-token input with the title).
    #[arg(long, default_value_t = 200)]
    chunk_size: usize,
    /// Tokens repeated across a cut inside a paragraph.
    #[arg(long, default_value_t = 40)]
    overlap: usize,
}

impl AddCmd {
    fn run(self, out: &Output) -> Result<()> {
        let t0 = Instant::now();
        let mut store = self.index.open()?;
        self.index.lock_writer(store.as_mut(), out)?;
        let (encoder, meta) = match store.meta()? {
            Some(meta) => {
                if let Some(m) = &self.model {
                    let given = IndexEncoder::load(m, &self.index.device, Some(&meta))?;
                    (given, meta)
                } else {
                    (self.index.encoder(&meta)?, meta)
                }
            }
            None => {
                let Some(m) = &self.model else {
                    bail!("a new index needs --model ENCODER");
                };
                let enc = IndexEncoder::load(m, &self.index.device, None)?;
                if enc.model.causal_lm().is_ok() {
                    out.line(format!(
                        "note: {m} is a causal LM; sentence encoders (BERT family) retrieve better"
                    ));
                }
                let meta = IndexMeta {
                    model: enc.path.display().to_string(),
                    fingerprint: enc.fingerprint.clone(),
                    probe: enc.probe()?,
                    dim: enc.model.info.hidden_size,
                    pooling: enc.options.pooling.to_string(),
                    chunking: ChunkConfig {
                        size: self.chunk_size,
                        overlap: self.overlap,
                    },
                };
                meta.chunking.validate()?;
                store.init(&meta)?;
                (enc, meta)
            }
        };
        let docs = load_documents(&self.paths)?;
        if docs.is_empty() {
            bail!("no documents with text under the given paths");
        }
        let bar = out.bar();
        bar.start("indexing", docs.len() as u64);
        let mut last = 0;
        let report = add_documents(
            store.as_mut(),
            &docs,
            &encoder,
            &meta.chunking,
            &mut |done, _| {
                bar.advance((done - last) as u64);
                last = done;
            },
        )?;
        bar.finish();
        let stats = store.stats()?;
        let secs = t0.elapsed().as_secs_f64();
        out.line(format!(
            "{} documents: {} added, {} updated, {} unchanged; {} chunks written in {secs:.1}s \
             (index: {} documents, {} chunks)",
            docs.len(),
            report.added,
            report.updated,
            report.unchanged,
            report.chunks,
            stats.documents,
            stats.chunks
        ));
        out.result(json!({
            "ok": true, "command": "index add", "report": report, "stats": stats,
            "seconds": secs,
        }));
        Ok(())
    }
}

#[derive(Args)]
pub struct RmCmd {
    #[command(flatten)]
    index: IndexArgs,
    /// Source names, files or folders, as given to `index add`.
    #[arg(required = true)]
    sources: Vec<String>,
}

impl RmCmd {
    fn run(self, out: &Output) -> Result<()> {
        let mut store = self.index.open()?;
        self.index.lock_writer(store.as_mut(), out)?;
        let all = store.hashes()?;
        let mut names = Vec::new();
        for s in &self.sources {
            let m = matching_sources(all.keys(), s);
            if m.is_empty() {
                out.line(format!("no document matches {s}"));
            }
            names.extend(m);
        }
        names.sort();
        names.dedup();
        let n = store.delete(&names)?;
        let stats = store.stats()?;
        out.line(format!(
            "removed {n} documents (index: {} documents, {} chunks)",
            stats.documents, stats.chunks
        ));
        out.result(json!({"ok": true, "command": "index rm", "removed": n, "sources": names, "stats": stats}));
        Ok(())
    }
}

#[derive(Args)]
pub struct StatsCmd {
    #[command(flatten)]
    index: IndexArgs,
}

impl StatsCmd {
    fn run(self, out: &Output) -> Result<()> {
        let mut store = self.index.open()?;
        let meta = store.meta()?;
        let stats = store.stats()?;
        out.line(format!(
            "{} index {}: {} documents, {} chunks, {} vectors{}",
            stats.store,
            self.index.index,
            stats.documents,
            stats.chunks,
            stats.vectors,
            stats
                .bytes
                .map(|b| format!(", {:.1} MB", b as f64 / 1e6))
                .unwrap_or_default()
        ));
        if let Some(m) = &meta {
            out.line(format!(
                "encoder {} ({} dims, {} pooling); chunks of {} tokens, overlap {}",
                m.model, m.dim, m.pooling, m.chunking.size, m.chunking.overlap
            ));
        }
        if stats.incomplete_documents > 0 {
            out.line(format!(
                "warning: {} documents have missing chunks",
                stats.incomplete_documents
            ));
        }
        out.result(json!({"ok": true, "command": "index stats", "meta": meta, "stats": stats}));
        Ok(())
    }
}

#[derive(Args)]
pub struct EvalCmd {
    #[command(flatten)]
    index: IndexArgs,
    /// Questions: SQuAD JSON, or JSONL with `question`, `relevant` (source names) and `answers`.
    #[arg(long)]
    questions: PathBuf,
    /// Chunks retrieved per question for recall@k and MRR.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Only N questions, drawn with --seed and kept in file order.
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the --limit draw.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also answer every question with this causal LM (as `tuna ask` does, greedy) and score
    /// the answers.
    #[arg(long)]
    answer_model: Option<String>,
    #[command(flatten)]
    answer: AnswerArgs,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// Write one JSON line per question (rank of the first relevant chunk, answer, scores).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl EvalCmd {
    fn run(self, out: &Output) -> Result<()> {
        let questions = self.read_questions()?;
        let (mut store, meta) = self.index.open_built()?;
        let encoder = self.index.encoder(&meta)?;
        let t0 = Instant::now();
        let texts: Vec<String> = questions.iter().map(|q| q.question.clone()).collect();
        let vectors = encoder.vectors(&texts)?;
        let embed_secs = t0.elapsed().as_secs_f64();
        let lm = self.load_answer_model()?;
        let answerer = lm
            .as_ref()
            .map(|m| Answerer::new(m, self.answer.clone(), self.max_new_tokens))
            .transpose()?;
        let cfg = GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            sampling: Sampling::default(),
            stop_strings: vec!["\n".into()],
            stop_tokens: answerer
                .as_ref()
                .map(|a| tuna_lm::stop_token_ids(a.generator().tokenizer()))
                .unwrap_or_default(),
        };
        let mut file = match &self.out {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => None,
        };
        let mut score = RetrievalScore::new(self.top);
        let mut totals = AnswerTotals::default();
        let mut search_secs = Vec::with_capacity(questions.len());
        let bar = out.bar();
        bar.start("questions", questions.len() as u64);
        for (q, v) in questions.iter().zip(&vectors) {
            let t = Instant::now();
            let hits = store.search(v, self.top.max(self.answer.k))?;
            search_secs.push(t.elapsed().as_secs_f64());
            let retrieved: Vec<String> = hits
                .iter()
                .take(self.top)
                .map(|h| h.source.clone())
                .collect();
            let rank = first_relevant_rank(&retrieved, &q.relevant);
            score.add(rank);
            let mut line = json!({"id": q.id, "question": q.question, "rank": rank,
                                  "retrieved": &retrieved[..retrieved.len().min(5)]});
            if let Some(a) = &answerer {
                let (e, f) = answer_question(a, q, &hits[..], self.answer.k, &cfg, &mut line)?;
                totals.add(e, f);
                bar.message(&format!(
                    "EM {:.1}% F1 {:.1}%",
                    100.0 * totals.em / totals.answered as f64,
                    100.0 * totals.f1 / totals.answered as f64
                ));
            }
            if let Some(w) = file.as_mut() {
                writeln!(w, "{line}")?;
            }
            bar.advance(1);
        }
        bar.finish();
        if let Some(mut w) = file {
            w.flush()?;
        }
        self.report(
            out,
            store.kind(),
            score.metrics(),
            search_secs,
            embed_secs,
            &totals,
        );
        Ok(())
    }

    /// The questions, --limit of them drawn with --seed (a file lists an article's questions
    /// together); an error if none are left.
    fn read_questions(&self) -> Result<Vec<Question>> {
        let mut questions = load_questions(&self.questions)?;
        if let Some(n) = self.limit {
            let keep = tuna_data::seeded_subset(questions.len(), n, self.seed);
            questions = keep.into_iter().map(|i| questions[i].clone()).collect();
        }
        if questions.is_empty() {
            bail!("no questions to evaluate (--limit 0)");
        }
        Ok(questions)
    }

    /// The --answer-model, loaded on the index's device; `None` without one.
    fn load_answer_model(&self) -> Result<Option<Model>> {
        let Some(m) = &self.answer_model else {
            return Ok(None);
        };
        let device = tuna_core::pick_device(&self.index.device)?;
        let path = tuna_models::resolve_model(m)?;
        Ok(Some(
            tuna_models::load_model(&path, &device)
                .with_context(|| format!("loading model {m}"))?,
        ))
    }

    /// Prints the retrieval scores, search times and answer scores, and the result line.
    fn report(
        &self,
        out: &Output,
        store_kind: &str,
        m: RetrievalMetrics,
        mut search_secs: Vec<f64>,
        embed_secs: f64,
        totals: &AnswerTotals,
    ) {
        search_secs.sort_by(f64::total_cmp);
        let pct = |p: f64| search_secs[((search_secs.len() - 1) as f64 * p).round() as usize];
        out.line(format!(
            "{} questions: recall@1 {:.3}, recall@5 {:.3}, recall@{} {:.3}, MRR {:.3} \
             (search p50 {:.1} ms, p99 {:.1} ms)",
            m.questions,
            m.recall_at_1,
            m.recall_at_5,
            m.k,
            m.recall_at_k,
            m.mrr,
            pct(0.5) * 1e3,
            pct(0.99) * 1e3
        ));
        let answered = totals.answered;
        let answers = (answered > 0).then(|| {
            let (e, f) = (totals.em / answered as f64, totals.f1 / answered as f64);
            out.line(format!(
                "answers: exact match {:.1}%, F1 {:.1}% ({answered} questions)",
                100.0 * e,
                100.0 * f
            ));
            json!({"questions": answered, "exact_match": e, "f1": f, "sources": self.answer.k})
        });
        out.result(json!({
            "ok": true, "command": "index eval", "store": store_kind, "retrieval": m,
            "answers": answers, "embed_seconds": embed_secs,
            "search_ms_p50": pct(0.5) * 1e3, "search_ms_p99": pct(0.99) * 1e3,
        }));
    }
}

/// Exact match and token F1 summed over the questions answered so far.
#[derive(Default)]
struct AnswerTotals {
    em: f64,
    f1: f64,
    answered: usize,
}

impl AnswerTotals {
    fn add(&mut self, exact_match: f64, f1: f64) {
        self.em += exact_match;
        self.f1 += f1;
        self.answered += 1;
    }
}

/// Answers `q` from its first `k` hits, adds the answer and its scores to `line`; the exact
/// match and token F1 of the answer.
fn answer_question(
    a: &Answerer<'_>,
    q: &Question,
    hits: &[Hit],
    k: usize,
    cfg: &GenerateConfig,
    line: &mut Value,
) -> Result<(f64, f64)> {
    let top: Vec<_> = hits.iter().take(k).cloned().collect();
    let prompt = a.prompt(&q.question, &top)?;
    let g = a.answer(&prompt, cfg, &mut |_| Ok(()))?;
    let pred = g.text.trim().to_string();
    let (e, f) = (exact_match(&pred, &q.answers), token_f1(&pred, &q.answers));
    line["answer"] = json!(pred);
    line["answers"] = json!(q.answers);
    line["exact_match"] = json!(e);
    line["f1"] = json!(f);
    Ok((e, f))
}
