//! Classification metrics: accuracy, per-class precision/recall/F1, macro-F1 and the confusion
//! matrix, computed as scikit-learn does with `labels=` every class of the map and
//! `zero_division=0`.

use crate::LabelMap;
use std::fmt::Write;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub label: String,
    /// `tp / (tp + fp)`, 0 when nothing was predicted as this class.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when the class does not occur in the gold labels.
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)`, 0 when that is 0/0.
    pub f1: f64,
    /// Number of gold examples of this class.
    pub support: usize,
}

/// Scores of predictions against gold labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Fraction of correct predictions (0 when there are no examples).
    pub accuracy: f64,
    /// Unweighted mean of per-class F1 over every class of the label map.
    pub macro_f1: f64,
    /// `confusion[gold][pred]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// One entry per class of the label map, in index order.
    pub per_class: Vec<ClassMetrics>,
    /// Number of examples scored.
    pub n: usize,
}

/// Scores `pred` against `gold` (class indices of `labels`).
///
/// # Panics
/// If the slices differ in length or hold an index `>= labels.len()`.
pub fn evaluate(gold: &[usize], pred: &[usize], labels: &LabelMap) -> Metrics {
    assert_eq!(
        gold.len(),
        pred.len(),
        "gold and predictions differ in length"
    );
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&g, &p) in gold.iter().zip(pred) {
        confusion[g][p] += 1;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let (fp, fn_) = (predicted - tp, support - tp);
            ClassMetrics {
                label: labels.name(c).to_string(),
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                f1: ratio(2 * tp, 2 * tp + fp + fn_),
                support,
            }
        })
        .collect();
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let macro_f1 = if k == 0 {
        0.0
    } else {
        per_class.iter().map(|m| m.f1).sum::<f64>() / k as f64
    };
    Metrics {
        accuracy: ratio(correct, gold.len()),
        macro_f1,
        confusion,
        per_class,
        n: gold.len(),
    }
}

impl Metrics {
    /// The confusion matrix as a Markdown table, gold classes as rows, predictions as columns.
    pub fn confusion_markdown(&self) -> String {
        let mut s = String::from("| gold \\ pred |");
        for c in &self.per_class {
            let _ = write!(s, " {} |", escape(&c.label));
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(self.per_class.len()));
        s.push('\n');
        for (c, row) in self.per_class.iter().zip(&self.confusion) {
            let _ = write!(s, "| {} |", escape(&c.label));
            for v in row {
                let _ = write!(s, " {v} |");
            }
            s.push('\n');
        }
        s
    }

    /// A Markdown report: accuracy and macro-F1, the confusion matrix, and per-class scores.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "accuracy {:.4}, macro-F1 {:.4} on {} examples\n\n",
            self.accuracy, self.macro_f1, self.n
        );
        s.push_str(&self.confusion_markdown());
        s.push_str("\n| class | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|\n");
        for c in &self.per_class {
            let _ = writeln!(
                s,
                "| {} | {:.4} | {:.4} | {:.4} | {} |",
                escape(&c.label),
                c.precision,
                c.recall,
                c.f1,
                c.support
            );
        }
        s
    }
}

/// Escapes `|` so a label cannot break a table cell.
fn escape(label: &str) -> String {
    label.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(names: &[&str]) -> LabelMap {
        LabelMap::new(names.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn matches_hand_computation() {
        // gold = [0,0,0,1,1,2], pred = [0,0,1,1,2,2], classes a, b, c, d (d never occurs).
        // a: tp 2, fp 0, fn 1 -> P 1,   R 2/3, F1 4/5
        // b: tp 1, fp 1, fn 1 -> P 1/2, R 1/2, F1 1/2
        // c: tp 1, fp 1, fn 0 -> P 1/2, R 1,   F1 2/3
        // d: tp 0, fp 0, fn 0 -> P 0,   R 0,   F1 0   (zero_division=0)
        // accuracy 4/6; macro-F1 over all 4 classes = (4/5 + 1/2 + 2/3 + 0) / 4 = 59/120.
        // sklearn: f1_score(g, p, labels=[0,1,2,3], average="macro", zero_division=0)
        //          = 59/120 ≈ 0.4917
        let m = evaluate(
            &[0, 0, 0, 1, 1, 2],
            &[0, 0, 1, 1, 2, 2],
            &map(&["a", "b", "c", "d"]),
        );
        close(m.accuracy, 4.0 / 6.0);
        close(m.macro_f1, 59.0 / 120.0);
        let f1: Vec<f64> = m.per_class.iter().map(|c| c.f1).collect();
        for (got, want) in f1.iter().zip([0.8, 0.5, 2.0 / 3.0, 0.0]) {
            close(*got, want);
        }
        close(m.per_class[0].recall, 2.0 / 3.0);
        close(m.per_class[2].precision, 0.5);
        assert_eq!(
            m.per_class.iter().map(|c| c.support).collect::<Vec<_>>(),
            [3, 2, 1, 0]
        );
        assert_eq!(m.confusion[0], [2, 1, 0, 0]);
        assert_eq!(m.confusion[1], [0, 1, 1, 0]);
        assert_eq!(m.n, 6);
    }

    #[test]
    fn perfect_and_empty() {
        let m = evaluate(&[1, 0, 1], &[1, 0, 1], &map(&["neg", "pos"]));
        close(m.accuracy, 1.0);
        close(m.macro_f1, 1.0);
        let m = evaluate(&[], &[], &map(&["neg", "pos"]));
        assert_eq!((m.accuracy, m.macro_f1, m.n), (0.0, 0.0, 0));
    }

    #[test]
    fn markdown_and_json() {
        let m = evaluate(&[0, 1, 1], &[0, 0, 1], &map(&["ham", "sp|am"]));
        let table = m.confusion_markdown();
        assert_eq!(
            table,
            "| gold \\ pred | ham | sp\\|am |\n|---|---:|---:|\n| ham | 1 | 0 |\n| sp\\|am | 1 | 1 |\n"
        );
        let md = m.to_markdown();
        assert!(
            md.starts_with("accuracy 0.6667, macro-F1 0.6667 on 3 examples"),
            "{md}"
        );
        assert!(
            md.contains("| ham | 0.5000 | 1.0000 | 0.6667 | 1 |"),
            "{md}"
        );
        let back: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
