//! Times each classifier on 6,000 x 384 random "embeddings" with 2 classes (a noisy linear rule).
//!
//! `cargo run --release -p tuna-classic --example fit_timing [rows] [cols] [classes]`;
//! set `RAYON_NUM_THREADS=1` to time one core.

use std::time::Instant;
use tuna_classic::{accuracy, Classifier, ClassifierConfig, ClassifierKind, Features};
use tuna_core::Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (rows, cols, k) = (
        args.first().copied().unwrap_or(6000),
        args.get(1).copied().unwrap_or(384),
        args.get(2).copied().unwrap_or(2),
    );
    let mut rng = Rng::new(42);
    let w: Vec<f64> = (0..k * cols).map(|_| rng.normal()).collect();
    let mut x = Vec::with_capacity(rows * cols);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
        let scores: Vec<f64> = (0..k)
            .map(|c| {
                let s: f64 = row.iter().zip(&w[c * cols..]).map(|(a, b)| a * b).sum();
                s / (cols as f64).sqrt() + 0.5 * rng.normal()
            })
            .collect();
        let label = (0..k).fold(0, |b, c| if scores[c] > scores[b] { c } else { b });
        y.push(label);
        x.extend(row.iter().map(|&v| v as f32));
    }
    let f = Features::new(&x, rows, cols)?;
    println!(
        "{rows} x {cols}, {k} classes, threads {}",
        tuna_classic::par::num_threads()
    );
    for (kind, c) in [
        (ClassifierKind::Logreg, 1.0),
        (ClassifierKind::Logreg, 0.01),
        (ClassifierKind::Svm, 1.0),
        (ClassifierKind::Svm, 0.01),
        (ClassifierKind::Forest, 0.0),
    ] {
        let cfg = ClassifierConfig {
            kind,
            c: kind.has_c().then_some(c),
            ..ClassifierConfig::default()
        };
        let start = Instant::now();
        let model = Classifier::fit(&f, &y, k, &cfg)?;
        let secs = start.elapsed().as_secs_f64();
        let train_acc = accuracy(&model.predict(&f)?, &y);
        let size = serde_json::to_vec(&model)?.len();
        let extra = match &model {
            Classifier::Logreg(m) => format!("iterations {}", m.model.n_iter),
            Classifier::Forest(m) => format!(
                "nodes {}",
                m.model.trees.iter().map(|t| t.n_nodes()).sum::<usize>()
            ),
            Classifier::Svm(_) => String::new(),
        };
        println!(
            "{kind:<6} C={c:<5} fit {secs:>7.3} s  train acc {train_acc:.3}  json {:.1} MB  {extra}",
            size as f64 / 1e6
        );
    }
    Ok(())
}
