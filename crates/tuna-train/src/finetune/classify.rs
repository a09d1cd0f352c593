//! Classification as a stage of the one loop: the cross-entropy of a batch of labelled
//! examples (from the frozen states when the method starts past the input), accuracy and loss
//! on the validation part (the best epoch is chosen by accuracy), and the curves' rows.

use super::examples::{Example, PartData};
use super::history::HistoryRow;
use super::task_model::{probabilities, Boundary, TaskModel};
use crate::optimize::{EvalPoint, Evaluation, Stage, StepReport, Values};
use crate::Result;
use candle_core::Tensor;
use tuna_data::{evaluate, LabelMap, Metrics};
use tuna_models::tokenizer::pad_batch;

/// Examples per batch when evaluating or caching states.
pub const EVAL_BATCH: usize = 64;

/// The classification stage over `train`, scored on `val`.
pub struct Classify<'a> {
    pub train: &'a PartData,
    pub val: &'a PartData,
    pub labels: &'a LabelMap,
    pub boundary: Boundary,
}

impl Stage for Classify<'_> {
    type Row = HistoryRow;

    fn loss(&mut self, tm: &TaskModel, idx: &[usize], _: &mut Values) -> Result<Tensor> {
        let logits = logits(tm, self.train, idx, self.boundary)?;
        let gold: Vec<u32> = idx
            .iter()
            .map(|&i| self.train.examples[i].label as u32)
            .collect();
        let gold = Tensor::new(gold.as_slice(), logits.device())?;
        Ok(candle_nn::loss::cross_entropy(&logits, &gold)?)
    }

    fn evaluate(&mut self, tm: &TaskModel, at: &EvalPoint) -> Result<Evaluation<HistoryRow>> {
        let (acc, vloss) = score(tm, self.val, self.boundary, self.labels)?;
        tracing::info!(
            epoch = at.epoch.ceil() as usize,
            val_accuracy = acc.accuracy,
            val_loss = vloss,
            "epoch done"
        );
        Ok(Evaluation {
            row: HistoryRow {
                step: at.step,
                epoch: at.epoch,
                lr: at.lr,
                loss: None,
                val_accuracy: Some(acc.accuracy),
                val_loss: Some(vloss),
            },
            score: Some(acc.accuracy),
        })
    }

    fn step_row(&self, s: &StepReport) -> HistoryRow {
        HistoryRow {
            step: s.step,
            epoch: s.epoch,
            lr: s.lr,
            loss: Some(s.loss),
            val_accuracy: None,
            val_loss: None,
        }
    }

    fn message(&self, s: &StepReport, _: &HistoryRow) -> String {
        format!(
            "epoch {} loss {:.4} lr {:.2e} {:.1} ex/s",
            s.epoch_index + 1,
            s.loss,
            s.lr,
            s.examples_per_second
        )
    }
}

/// Logits of the examples `idx` of `part`.
pub fn logits(
    tm: &TaskModel,
    part: &PartData,
    idx: &[usize],
    boundary: Boundary,
) -> Result<Tensor> {
    let seqs: Vec<&[u32]> = idx
        .iter()
        .map(|&i| part.examples[i].ids.as_slice())
        .collect();
    let batch = pad_batch(&seqs, tm.model.tokenizer.pad_id, &tm.model.device)?;
    Ok(match (boundary, &part.states) {
        (Boundary::Input, _) | (_, None) => tm.logits(&batch)?,
        (Boundary::Pooled, Some(states)) => {
            let rows: Vec<&Tensor> = idx.iter().map(|&i| &states[i]).collect();
            tm.logits_from(&Tensor::stack(&rows, 0)?, &batch.mask, boundary)?
        }
        (Boundary::Block(_), Some(states)) => {
            let t = batch.ids.dim(1)?;
            let rows = idx
                .iter()
                .map(|&i| {
                    let s = &states[i];
                    let (len, h) = s.dims2()?;
                    if len == t {
                        Ok(s.clone())
                    } else {
                        let pad = Tensor::zeros((t - len, h), s.dtype(), s.device())?;
                        Tensor::cat(&[s, &pad], 0)
                    }
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            tm.logits_from(&Tensor::stack(&rows, 0)?, &batch.mask, boundary)?
        }
    })
}

/// Class probabilities of every example of `part` with the weights installed in `tm`.
pub fn probabilities_of(
    tm: &TaskModel,
    part: &PartData,
    boundary: Boundary,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![vec![]; part.examples.len()];
    for idx in by_length(&part.examples).chunks(EVAL_BATCH) {
        let probs = probabilities(&logits(tm, part, idx, boundary)?)?;
        for (k, &i) in idx.iter().enumerate() {
            out[i] = probs[k].clone();
        }
    }
    Ok(out)
}

/// Metrics and mean cross-entropy on `part`.
pub fn score(
    tm: &TaskModel,
    part: &PartData,
    boundary: Boundary,
    labels: &LabelMap,
) -> Result<(Metrics, f64)> {
    let probs = probabilities_of(tm, part, boundary)?;
    let gold = part.labels();
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let loss = probs
        .iter()
        .zip(&gold)
        .map(|(p, &g)| -(p[g].max(1e-12) as f64).ln())
        .sum::<f64>()
        / gold.len().max(1) as f64;
    Ok((evaluate(&gold, &pred, labels), loss))
}

/// Index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Example indices sorted by length (less padding per batch), ties by index.
pub fn by_length(ex: &[Example]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..ex.len()).collect();
    idx.sort_by_key(|&i| (ex[i].ids.len(), i));
    idx
}
