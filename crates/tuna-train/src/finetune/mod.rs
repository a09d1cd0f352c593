//! Finetuning methods for classification: a new head on a frozen backbone (optionally with its
//! last blocks), all weights, LoRA, bottleneck adapters, prefix tuning and soft prompts, all
//! trained by [`trainer::Trainer`] on the one loop of [`crate::optimize`] and saved in a run
//! directory (adapters in PEFT's layout).

pub mod adamw;
pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod head;
pub mod history;
pub mod merge;
pub mod params;
pub mod peft;
pub mod prefix;
pub mod task_model;
pub mod trainer;

use crate::progress::Progress;
use crate::run::RunWriter;
use crate::task_data::{Part, TaskData};
use crate::Result;
use candle_core::{Device, Tensor};
pub use config::{LoraSettings, MethodConfig, MethodKind, Schedule, TrainConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
pub use task_model::TaskModel;
use trainer::{Example, PartData, TrainOutcome, Trainer};
use tuna_models::{load_model, Model};

/// Everything that defines a finetuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneConfig {
    pub method: MethodConfig,
    pub train: TrainConfig,
}

/// A finished finetuning run.
pub struct FinetuneResult {
    pub outcome: TrainOutcome,
    /// Trainable values (method + head).
    pub trainable: usize,
    /// How many tensors trained.
    pub trainable_tensors: usize,
}

/// Files in a run directory.
pub const HEAD_FILE: &str = "head.safetensors";
pub const BACKBONE_FILE: &str = "backbone.safetensors";
pub const ADAPTER_DIR: &str = "adapter";

fn examples(model: &Model, data: &TaskData, part: &Part, max_len: usize) -> Result<Vec<Example>> {
    let labels = data.labels_of(part);
    data.texts_of(part)
        .iter()
        .zip(labels)
        .map(|(t, label)| {
            Ok(Example {
                ids: model.encode(t, max_len)?,
                label,
            })
        })
        .collect()
}

/// Trains `cfg` on `data` and writes the method's files into `run`. With `resume`, continues
/// from the checkpoint inside `run`.
pub fn finetune(
    model: Model,
    data: &TaskData,
    cfg: &FinetuneConfig,
    run: &RunWriter,
    resume: bool,
    progress: &dyn Progress,
) -> Result<(TaskModel, FinetuneResult)> {
    let max_len = cfg.train.max_len;
    let mut train = PartData::new(examples(&model, data, &data.train, max_len)?);
    let mut val = PartData::new(examples(&model, data, &data.val, max_len)?);
    let mut test = match &data.test {
        Some(p) => Some(PartData::new(examples(&model, data, p, max_len)?)),
        None => None,
    };
    let source = model.info.source.clone();
    let mut tm = TaskModel::build(model, cfg.method.clone(), data.labels.len(), cfg.train.seed)?;
    let names = params::trainable_names(&mut tm)?;
    let params = params::Params::create(&mut tm, &names)?;
    let trainable = params.count();
    tracing::info!(trainable, tensors = names.len(), "trainable parameters");
    let settings = serde_json::to_string(cfg).map_err(|e| crate::Error::Invalid(e.to_string()))?;
    let mut trainer = Trainer {
        tm: &mut tm,
        params,
        cfg: cfg.train.clone(),
        checkpoint_dir: Some(run.path("checkpoint")),
        resume,
        settings,
        progress,
    };
    let outcome = trainer.run(&mut train, &mut val, test.as_mut(), &data.labels)?;
    let params = std::mem::replace(&mut trainer.params, params::Params { list: vec![] });
    params.install(&mut tm, false)?;
    save_method_files(&mut tm, &params.named(), run.path("").as_path(), &source)?;
    let ck = run.path("checkpoint");
    if ck.exists() {
        std::fs::remove_dir_all(&ck).map_err(|e| tuna_core::Error::io(&ck, e))?;
    }
    Ok((
        tm,
        FinetuneResult {
            outcome,
            trainable,
            trainable_tensors: names.len(),
        },
    ))
}

/// Writes the head, and the adapter (PEFT layout) or the trained backbone tensors.
pub fn save_method_files(
    tm: &mut TaskModel,
    trained: &[(String, Tensor)],
    dir: &Path,
    base_model: &Path,
) -> Result<()> {
    save_head(tm, trained, dir)?;
    let is_head = |n: &str| tm.head.owns(n);
    match tm.method.kind {
        MethodKind::Head | MethodKind::Full => {
            let rest: HashMap<String, Tensor> = trained
                .iter()
                .filter(|(n, _)| !is_head(n))
                .cloned()
                .collect();
            if !rest.is_empty() {
                peft::save_tensors(&rest, &dir.join(BACKBONE_FILE))?;
            }
        }
        _ => {
            if let Some(p) = &mut tm.prefix {
                p.freeze_table()?;
            }
            peft::save_adapter(tm, &dir.join(ADAPTER_DIR), base_model)?;
        }
    }
    Ok(())
}

/// Writes the tensors of `trained` that `tm`'s head owns (`HEAD.*`, `HEAD_hidden.*`,
/// `HEAD_pool.*`) into `dir`'s head file.
pub fn save_head(tm: &TaskModel, trained: &[(String, Tensor)], dir: &Path) -> Result<()> {
    let head: HashMap<String, Tensor> = trained
        .iter()
        .filter(|(n, _)| tm.head.owns(n))
        .cloned()
        .collect();
    peft::save_tensors(&head, &dir.join(HEAD_FILE))
}

/// Rebuilds a finetuned classifier from a run directory.
pub fn load_finetuned(
    dir: &Path,
    cfg: &FinetuneConfig,
    num_labels: usize,
    model_path: &Path,
    device: &Device,
) -> Result<TaskModel> {
    let model = load_model(model_path, device)?;
    let mut tm = TaskModel::build(model, cfg.method.clone(), num_labels, cfg.train.seed)?;
    let files = [
        dir.join(HEAD_FILE),
        dir.join(BACKBONE_FILE),
        dir.join(ADAPTER_DIR).join(peft::WEIGHTS),
    ];
    for f in files.iter().filter(|f| f.exists()) {
        let tensors = peft::read_tensors(f, device)?;
        peft::load_into(&mut tm, tensors, f)?;
    }
    Ok(tm)
}

/// Loads a PEFT adapter directory (made by PEFT or by tuna) onto `tm`'s backbone, replacing
/// the method's structure by the adapter's.
pub fn apply_peft_adapter(
    model: Model,
    adapter: &Path,
    base: &MethodConfig,
    num_labels: usize,
) -> Result<TaskModel> {
    let acfg = peft::AdapterConfig::read(adapter)?;
    let method = acfg.method(base, &adapter.join(peft::CONFIG))?;
    let mut tm = TaskModel::build(model, method, num_labels, 0)?;
    let f = adapter.join(peft::WEIGHTS);
    let tensors = peft::read_tensors(&f, &tm.model.device.clone())?;
    peft::load_into(&mut tm, tensors, &f)?;
    Ok(tm)
}

/// Peak resident memory of this process so far, in bytes (Linux; 0 elsewhere).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Write-out helper for callers that finish the run: the curves.
pub fn write_history(run: &RunWriter, res: &FinetuneResult, title: &str) -> Result<()> {
    history::write(run.path("").as_path(), &res.outcome.history, title)
}
