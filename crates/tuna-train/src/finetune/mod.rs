//! Finetuning for classification with any method of `tuna-adapt` (a new head on a frozen
//! backbone, optionally with its last blocks, all weights, LoRA, DoRA, IA3, bottleneck
//! adapters, prefix tuning and soft prompts), trained by [`trainer::Trainer`] on the one loop of [`crate::optimize`] and saved in a run
//! directory (adapters in PEFT's layout).

pub mod adamw;
pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod examples;
pub mod head;
pub mod history;
pub mod merge;
pub mod params;
pub mod peft;
pub mod settings;
pub mod task_model;
pub mod trainer;
pub mod weights_file;

use crate::progress::Progress;
use crate::run::RunWriter;
use crate::task_data::{Part, TaskData};
use crate::Result;
use candle_core::{Device, Tensor};
pub use config::{Schedule, TrainConfig};
pub use head::HeadConfig;
pub use settings::FinetuneConfig;
use std::collections::HashMap;
use std::path::Path;
pub use task_model::TaskModel;
use trainer::{Example, PartData, TrainOutcome, Trainer};
use tuna_models::{load_model, Model};

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
    let mut tm = TaskModel::build(
        model,
        cfg.method.clone(),
        &cfg.head,
        data.labels.len(),
        cfg.train.seed,
    )?;
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
    if tm.method.has_adapter() {
        tm.to_saved_form()?;
        return peft::save_adapter(tm, &dir.join(ADAPTER_DIR), base_model);
    }
    let rest: HashMap<String, Tensor> = trained
        .iter()
        .filter(|(n, _)| !is_head(n))
        .cloned()
        .collect();
    if !rest.is_empty() {
        peft::save_tensors(&rest, &dir.join(BACKBONE_FILE))?;
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
    Ok(peft::save_tensors(&head, &dir.join(HEAD_FILE))?)
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
    let mut tm = TaskModel::build(
        model,
        cfg.method.clone(),
        &cfg.head,
        num_labels,
        cfg.train.seed,
    )?;
    let adapter = dir.join(ADAPTER_DIR).join(peft::WEIGHTS);
    if adapter.exists() {
        tm.to_saved_form()?;
    }
    let files = [dir.join(HEAD_FILE), dir.join(BACKBONE_FILE), adapter];
    for f in files.iter().filter(|f| f.exists()) {
        let tensors = peft::read_tensors(f, device)?;
        peft::load_into(&mut tm, tensors, f)?;
    }
    Ok(tm)
}

/// Loads a PEFT adapter directory (made by PEFT or by tuna) onto `model`, with a fresh head of
/// `head`'s settings: the adapter's config says which method it is.
pub fn apply_peft_adapter(
    model: Model,
    adapter: &Path,
    head: &HeadConfig,
    num_labels: usize,
) -> Result<TaskModel> {
    let cfg = peft::read_config(adapter)?;
    let method = tuna_adapt::Method::from_peft(&cfg, &adapter.join(peft::CONFIG))?;
    let mut tm = TaskModel::build(model, method, head, num_labels, 0)?;
    tm.to_saved_form()?;
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
