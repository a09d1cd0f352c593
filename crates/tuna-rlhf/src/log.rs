//! Per-step metrics of an RLHF run: kept in the run state (so a resumed run continues its
//! curves), written as CSV and drawn as SVG charts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use tuna_train::chart::{line_chart, Series};

/// The metrics of one optimiser step (or one evaluation).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogRow {
    pub step: usize,
    /// NaN and infinities included (a checkpoint holding one must still resume).
    #[serde(with = "tuna_core::float_json::map")]
    pub values: BTreeMap<String, f64>,
}

impl LogRow {
    pub fn new(step: usize) -> Self {
        Self {
            step,
            values: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, key: &str, v: f64) -> &mut Self {
        self.values.insert(key.to_string(), v);
        self
    }

    /// A short line for the progress bar: `key value` pairs.
    pub fn summary(&self, keys: &[&str]) -> String {
        keys.iter()
            .filter_map(|k| self.values.get(*k).map(|v| format!("{k} {v:.4}")))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// CSV with a `step` column and one column per metric seen in any row.
pub fn to_csv(rows: &[LogRow]) -> String {
    let mut keys: Vec<&String> = rows.iter().flat_map(|r| r.values.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut s = String::from("step");
    for k in &keys {
        s.push(',');
        s.push_str(k);
    }
    s.push('\n');
    for r in rows {
        let _ = write!(s, "{}", r.step);
        for k in &keys {
            s.push(',');
            if let Some(v) = r.values.get(*k) {
                let _ = write!(s, "{v:.6}");
            }
        }
        s.push('\n');
    }
    s
}

/// An SVG chart of `left` metrics (left axis) and `right` metrics (right axis) over steps.
pub fn chart(title: &str, rows: &[LogRow], left: &[&str], right: &[&str]) -> String {
    let series = |k: &str, right_axis: bool| {
        let pts = rows
            .iter()
            .filter_map(|r| r.values.get(k).map(|v| (r.step as f64, *v)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        Series::new(k, pts, right_axis)
    };
    let all: Vec<Series> = left
        .iter()
        .map(|k| series(k, false))
        .chain(right.iter().map(|k| series(k, true)))
        .filter(|s| !s.points.is_empty())
        .collect();
    line_chart(title, "optimiser step", &all)
}

/// Writes `metrics.csv` into `dir`.
pub fn write_csv(dir: &Path, rows: &[LogRow]) -> tuna_core::Result<()> {
    let p = dir.join("metrics.csv");
    std::fs::write(&p, to_csv(rows)).map_err(|e| tuna_core::Error::io(&p, e))
}

/// Writes an SVG chart (see [`chart`]) to `path`.
pub fn write_chart(
    path: &Path,
    title: &str,
    rows: &[LogRow],
    left: &[&str],
    right: &[&str],
) -> tuna_core::Result<()> {
    std::fs::write(path, chart(title, rows, left, right)).map_err(|e| tuna_core::Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_every_metric_column() {
        let mut a = LogRow::new(1);
        a.set("loss", 0.5);
        let mut b = LogRow::new(2);
        b.set("loss", 0.25).set("kl", 0.1);
        assert_eq!(
            to_csv(&[a, b]),
            "step,kl,loss\n1,,0.500000\n2,0.100000,0.250000\n"
        );
    }

    #[test]
    fn a_checkpointed_state_with_a_nan_reads_back() {
        // The RLHF stages keep their curves in the checkpoint: one NaN (a diverged step's
        // gradient norm) must not make it unreadable.
        let mut st = crate::optim::LoopState::new("s");
        let mut row = LogRow::new(1);
        row.set("grad_norm", f64::NAN)
            .set("loss", f64::INFINITY)
            .set("lr", 0.5);
        st.history.push(row);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        tuna_core::fsutil::write_json(&p, &(&st, 1usize)).unwrap();
        let (back, _): (crate::optim::LoopState, usize) = tuna_core::fsutil::read_json(&p).unwrap();
        let v = &back.history[0].values;
        assert!(v["grad_norm"].is_nan());
        assert_eq!((v["loss"], v["lr"]), (f64::INFINITY, 0.5));
    }
}
