//! The table and log-log chart of `bench/scaling.sh`: reads its JSON lines (one per model shape
//! and weight type: `shape`, `parameters`, `weights`, `step_s`, `step_rss_mib`, `tokens_per_s`,
//! `decode_rss_mib`), prints a Markdown table and writes an SVG chart of seconds per SFT step
//! and per decoded token against the parameter count.
//!
//! `cargo run --release -p tuna-train --example scaling_report -- RESULTS.jsonl CHART.svg`

use serde_json::Value;
use tuna_train::chart::{log_log_chart, Series};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, results, svg] = args.as_slice() else {
        return Err("usage: scaling_report RESULTS.jsonl CHART.svg".into());
    };
    let rows: Vec<Value> = std::fs::read_to_string(results)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let num = |r: &Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!("| shape | parameters | weights | s / SFT step | peak RSS, SFT (MiB) | decode tokens/s | peak RSS, decode (MiB) |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0}M | {} | {:.2} | {:.0} | {:.1} | {:.0} |",
            r["shape"].as_str().unwrap_or("?"),
            num(r, "parameters") / 1e6,
            r["weights"].as_str().unwrap_or("?"),
            num(r, "step_s"),
            num(r, "step_rss_mib"),
            num(r, "tokens_per_s"),
            num(r, "decode_rss_mib"),
        );
    }
    let mut series = vec![];
    for (what, key) in [("SFT step", "step_s"), ("decoded token", "tokens_per_s")] {
        for weights in ["stored", "f32"] {
            let points = rows
                .iter()
                .filter(|r| r["weights"] == weights)
                .map(|r| {
                    let v = num(r, key);
                    let secs = if key == "tokens_per_s" { 1.0 / v } else { v };
                    (num(r, "parameters") / 1e6, secs)
                })
                .collect();
            series.push(Series::new(
                &format!("s per {what}, {weights}"),
                points,
                false,
            ));
        }
    }
    let title = "LoRA SFT step (4 x 128 tokens) and batch-1 decoding, random Llama shapes";
    let chart = log_log_chart(title, "parameters (millions)", "seconds", &series);
    std::fs::write(svg, chart)?;
    Ok(())
}
