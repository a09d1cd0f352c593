//! The training curves: one row per optimiser step (and per epoch's evaluation), saved as CSV
//! and drawn as an SVG chart.

use crate::chart::{line_chart, Series};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// One point of the curves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryRow {
    pub step: usize,
    /// Fractional epoch.
    #[serde(with = "tuna_core::float_json")]
    pub epoch: f64,
    #[serde(with = "tuna_core::float_json")]
    pub lr: f64,
    /// Mean training loss of the step (absent on evaluation rows).
    #[serde(default, with = "tuna_core::float_json::option")]
    pub loss: Option<f64>,
    /// Validation accuracy (on the evaluation row at each epoch's end).
    #[serde(default, with = "tuna_core::float_json::option")]
    pub val_accuracy: Option<f64>,
    /// Validation loss (evaluation rows).
    #[serde(default, with = "tuna_core::float_json::option")]
    pub val_loss: Option<f64>,
}

/// `step,epoch,lr,loss,val_loss,val_accuracy`.
pub fn to_csv(rows: &[HistoryRow]) -> String {
    let mut s = String::from("step,epoch,lr,loss,val_loss,val_accuracy\n");
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for r in rows {
        let _ = writeln!(
            s,
            "{},{:.4},{:.3e},{},{},{}",
            r.step,
            r.epoch,
            r.lr,
            opt(r.loss),
            opt(r.val_loss),
            opt(r.val_accuracy)
        );
    }
    s
}

/// Writes `history.csv` and `curves.svg` into `dir`.
pub fn write(dir: &Path, rows: &[HistoryRow], title: &str) -> Result<()> {
    tuna_core::fsutil::atomic_write(&dir.join("history.csv"), to_csv(rows).as_bytes())?;
    // Training loss smoothed over a window of steps, so the chart stays readable.
    let losses: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.loss.map(|l| (r.epoch, l)))
        .collect();
    let w = (losses.len() / 50).max(1);
    let smooth: Vec<(f64, f64)> = losses
        .chunks(w)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect();
    let val_loss: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.val_loss.map(|l| (r.epoch, l)))
        .collect();
    let val_acc: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.val_accuracy.map(|a| (r.epoch, a * 100.0)))
        .collect();
    let svg = line_chart(
        title,
        "epoch",
        &[
            Series::new("training loss", smooth, false),
            Series::new("validation loss", val_loss, false),
            Series::new("validation accuracy (%)", val_acc, true),
        ],
    );
    tuna_core::fsutil::atomic_write(&dir.join("curves.svg"), svg.as_bytes())?;
    Ok(())
}
