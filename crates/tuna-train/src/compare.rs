//! The comparison report of `tuna compare`: one row per method with test accuracy, trainable
//! parameters, training time and peak memory, optionally beside a PyTorch reference run.

use crate::chart::bar_chart;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// One method's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareRow {
    /// `features`, `head`, `last-2`, `full`, ...
    pub method: String,
    pub test_accuracy: f64,
    pub val_accuracy: f64,
    pub trainable_parameters: u64,
    /// Wall-clock seconds of the whole `tuna train` run (loading, caching, training, evaluation).
    pub seconds: f64,
    pub peak_rss_bytes: u64,
    /// Test accuracy of the reference run of the same configuration, if given.
    pub reference_accuracy: Option<f64>,
    pub run_dir: String,
}

/// The report as Markdown.
pub fn markdown(title: &str, setup: &str, rows: &[CompareRow]) -> String {
    let mut s = format!("# {title}\n\n{setup}\n\n");
    let with_ref = rows.iter().any(|r| r.reference_accuracy.is_some());
    s.push_str("| method | test accuracy | validation accuracy | trainable parameters | time (s) | peak memory (MiB) |");
    if with_ref {
        s.push_str(" PyTorch reference accuracy | difference (points) |");
    }
    s.push('\n');
    s.push_str("|---|---:|---:|---:|---:|---:|");
    if with_ref {
        s.push_str("---:|---:|");
    }
    s.push('\n');
    for r in rows {
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.0} |",
            r.method,
            percent(r.test_accuracy),
            percent(r.val_accuracy),
            group(r.trainable_parameters),
            r.seconds,
            r.peak_rss_bytes as f64 / (1u64 << 20) as f64
        );
        if with_ref {
            match r.reference_accuracy {
                Some(a) => {
                    let d = (r.test_accuracy - a) * 100.0;
                    // No "-0.00": a difference that rounds to zero is shown as +0.00.
                    let d = if d.abs() < 0.005 { 0.0 } else { d };
                    let _ = write!(s, " {:.2}% | {d:+.2} |", a * 100.0);
                }
                None => s.push_str(" – | – |"),
            }
        }
        s.push('\n');
    }
    s
}

/// Bar chart of test accuracy per method.
pub fn accuracy_chart(title: &str, rows: &[CompareRow]) -> String {
    let bars: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r.method.clone(), r.test_accuracy * 100.0))
        .collect();
    bar_chart(title, "test accuracy (%)", &bars)
}

/// A share in 0..1 as a percentage, or – when it was not measured (NaN).
fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}%", x * 100.0)
    } else {
        "–".to_string()
    }
}

/// `22566146` -> `22,566,146`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_method_and_reference_columns() {
        let row = |m: &str, a: f64, r: Option<f64>| CompareRow {
            method: m.into(),
            test_accuracy: a,
            val_accuracy: a,
            trainable_parameters: 22566146,
            seconds: 10.0,
            peak_rss_bytes: 1 << 30,
            reference_accuracy: r,
            run_dir: "x".into(),
        };
        let md = markdown(
            "t",
            "s",
            &[row("full", 0.9, Some(0.885)), row("features", 0.8, None)],
        );
        assert!(
            md.contains("| full | 90.00% | 90.00% | 22,566,146 | 10 | 1024 | 88.50% | +1.50 |"),
            "{md}"
        );
        assert!(md.contains("| features | 80.00% |") && md.contains("– | – |"));
        assert_eq!(group(999), "999");
        let mut icl = row("icl", 0.8, None);
        icl.val_accuracy = f64::NAN;
        let md = markdown("t", "s", &[icl]);
        assert!(md.contains("| icl | 80.00% | – |"), "{md}");
    }
}
