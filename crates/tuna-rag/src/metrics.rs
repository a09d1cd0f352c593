//! Retrieval metrics (recall@k, mean reciprocal rank) and answer metrics (SQuAD's exact match
//! and token F1 after its answer normalisation).

use crate::questions::source_matches;
use serde::Serialize;

/// 1-based rank of the first retrieved source that is relevant.
pub fn first_relevant_rank(retrieved: &[String], relevant: &[String]) -> Option<usize> {
    retrieved
        .iter()
        .position(|s| relevant.iter().any(|r| source_matches(s, r)))
        .map(|i| i + 1)
}

/// Averages of retrieval quality over questions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetrievalMetrics {
    pub questions: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_k: f64,
    pub k: usize,
    pub mrr: f64,
}

/// Accumulates ranks of the first relevant result (`None`: not in the top k).
#[derive(Debug, Clone, Default)]
pub struct RetrievalScore {
    ranks: Vec<Option<usize>>,
    k: usize,
}

impl RetrievalScore {
    pub fn new(k: usize) -> Self {
        RetrievalScore { ranks: vec![], k }
    }

    pub fn add(&mut self, rank: Option<usize>) {
        self.ranks.push(rank);
    }

    pub fn metrics(&self) -> RetrievalMetrics {
        let n = self.ranks.len().max(1) as f64;
        let within = |k: usize| {
            self.ranks
                .iter()
                .filter(|r| r.is_some_and(|r| r <= k))
                .count() as f64
                / n
        };
        RetrievalMetrics {
            questions: self.ranks.len(),
            recall_at_1: within(1),
            recall_at_5: within(5),
            recall_at_k: within(self.k),
            k: self.k,
            mrr: self
                .ranks
                .iter()
                .map(|r| r.map_or(0.0, |r| 1.0 / r as f64))
                .sum::<f64>()
                / n,
        }
    }
}

/// SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces.
pub fn normalize_answer(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// 1.0 when the normalised prediction equals a normalised reference.
pub fn exact_match(prediction: &str, answers: &[String]) -> f64 {
    let p = normalize_answer(prediction);
    if answers.iter().any(|a| normalize_answer(a) == p) {
        1.0
    } else {
        0.0
    }
}

/// The best token-overlap F1 of the prediction against any reference.
pub fn token_f1(prediction: &str, answers: &[String]) -> f64 {
    let p = normalize_answer(prediction);
    let pt: Vec<&str> = p.split_whitespace().collect();
    answers
        .iter()
        .map(|a| {
            let a = normalize_answer(a);
            let at: Vec<&str> = a.split_whitespace().collect();
            if pt.is_empty() || at.is_empty() {
                return f64::from(u8::from(pt == at));
            }
            let mut counts = std::collections::HashMap::new();
            for t in &at {
                *counts.entry(*t).or_insert(0i32) += 1;
            }
            let mut common = 0;
            for t in &pt {
                if let Some(c) = counts.get_mut(t) {
                    if *c > 0 {
                        *c -= 1;
                        common += 1;
                    }
                }
            }
            if common == 0 {
                return 0.0;
            }
            let precision = common as f64 / pt.len() as f64;
            let recall = common as f64 / at.len() as f64;
            2.0 * precision * recall / (precision + recall)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_normalisation_and_scores() {
        assert_eq!(normalize_answer("The  Eiffel Tower!"), "eiffel tower");
        let refs = vec!["Denver Broncos".to_string(), "Broncos".to_string()];
        assert_eq!(exact_match("the Broncos.", &refs), 1.0);
        assert_eq!(exact_match("Carolina", &refs), 0.0);
        let f = token_f1("Denver Broncos team", &refs);
        assert!((f - 0.8).abs() < 1e-9, "{f}");
        assert_eq!(token_f1("", &refs), 0.0);
    }

    #[test]
    fn recall_and_mrr() {
        let mut s = RetrievalScore::new(10);
        s.add(Some(1));
        s.add(Some(3));
        s.add(None);
        s.add(Some(7));
        let m = s.metrics();
        assert_eq!(m.recall_at_1, 0.25);
        assert_eq!(m.recall_at_5, 0.5);
        assert_eq!(m.recall_at_k, 0.75);
        assert!((m.mrr - (1.0 + 1.0 / 3.0 + 1.0 / 7.0) / 4.0).abs() < 1e-12);
        let ret = vec!["x".to_string(), "dir/f.json#T/2".to_string()];
        assert_eq!(first_relevant_rank(&ret, &["f.json#T/2".into()]), Some(2));
        assert_eq!(first_relevant_rank(&ret, &["g.json#T/2".into()]), None);
    }
}
