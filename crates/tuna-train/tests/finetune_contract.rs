//! Contract tests of every finetuning method on both families (tiny random models): what
//! trains and how much (attention-pooled heads included), no-op at initialisation, gradients reach every trainable tensor, the
//! loss falls, save -> load gives the same outputs, merged LoRA, DoRA and IA3 equal unmerged, and a killed
//! run resumed from its checkpoint ends exactly like an uninterrupted one.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use std::cell::{Cell, RefCell};
use std::path::Path;
use tuna_adapt::{Method, MethodArgs, MethodName};
use tuna_data::{Format, ReadOptions, SplitSpec};
use tuna_models::testing::{write_tiny_bert, write_tiny_llama};
use tuna_models::tokenizer::pad_batch;
use tuna_models::Network;
use tuna_models::{load_model, Batch, Model};
use tuna_nn::Pooling;
use tuna_train::finetune::params::{trainable_names, Params};
use tuna_train::finetune::{
    finetune, load_finetuned, FinetuneConfig, HeadConfig, TaskModel, TrainConfig,
};
use tuna_train::run::RunWriter;
use tuna_train::task_data::{load_task_data, DataSpec, TaskData};
use tuna_train::{Progress, Silent};

const P: usize = 4; // virtual tokens
const R: usize = 2; // LoRA rank
const M: usize = 8; // adapter size
const HID: usize = 16; // prefix MLP

fn method(kind: MethodName, unfreeze: usize) -> Method {
    let mut a = MethodArgs::defaults();
    a.head.unfreeze_last = unfreeze;
    a.lora.lora_r = R;
    a.lora.lora_alpha = 4.0;
    a.lora.lora_dropout = 0.0;
    a.adapter.adapter_size = M;
    a.virtual_tokens = P;
    a.prefix.prefix_hidden = HID;
    a.method(kind)
}

fn head(pooling: Pooling) -> HeadConfig {
    HeadConfig {
        pooling,
        hidden: 0,
        dropout: 0.0,
    }
}

fn write_data(path: &Path) {
    let spam = [
        "free cash prize now !",
        "win a free prize , call now",
        "cash prize ! text stop",
    ];
    let ham = [
        "hi how are you ?",
        "see you later",
        "love the film , it was fun",
    ];
    let mut s = String::new();
    for i in 0..24 {
        s.push_str(&format!(
            "spam\t{} {}\n",
            spam[i % 3],
            ["now", "!", "free"][i % 3]
        ));
        s.push_str(&format!(
            "ham\t{} {}\n",
            ham[i % 3],
            ["later", "?", "fun"][i % 3]
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn data(dir: &Path) -> TaskData {
    let f = dir.join("data.tsv");
    write_data(&f);
    let read = ReadOptions {
        format: Format::Tsv,
        ..ReadOptions::default()
    };
    load_task_data(&DataSpec {
        data: Some(f),
        train: None,
        val: None,
        test: None,
        read,
        split: SplitSpec::new(0.5, 0.25, 0.25).unwrap(),
        seed: 3,
        balance: false,
    })
    .unwrap()
}

fn batch(model: &Model) -> Batch {
    let seqs: Vec<Vec<u32>> = ["free cash prize now", "see you later !", "hi"]
        .iter()
        .map(|t| model.encode(t, 32).unwrap())
        .collect();
    pad_batch(&seqs, model.tokenizer.pad_id, &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Trainable values the method should have, from the architecture.
fn expected_count(model: &Model, kind: MethodName, unfreeze: usize, pooling: Pooling) -> usize {
    let c = 2;
    let pool = if pooling.is_learned() {
        model.info.hidden_size
    } else {
        0
    };
    pool + match &model.network {
        Network::Bert(b) => {
            let cfg = b.config();
            let (h, i, l, v) = (
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg.num_hidden_layers,
                cfg.vocab_size,
            );
            let head = h * c + c;
            let block = 4 * (h * h + h) + 2 * 2 * h + (h * i + i) + (i * h + h);
            head + match kind {
                MethodName::Head => unfreeze * block,
                MethodName::Full => {
                    v * h
                        + cfg.max_position_embeddings * h
                        + cfg.type_vocab_size * h
                        + 2 * h
                        + l * block
                }
                MethodName::Lora => l * 2 * R * (h + h),
                MethodName::Dora => l * 2 * (R * (h + h) + h),
                // key and value scale their outputs; both `output.dense` layers their input.
                MethodName::Ia3 => l * (3 * h + i),
                MethodName::Adapter => l * 2 * (h * M + M + M * h + h),
                MethodName::Prefix => P * h + h * HID + HID + HID * (l * 2 * h) + l * 2 * h,
                MethodName::Prompt => P * h,
            }
        }
        Network::Llama(m) => {
            let cfg = m.config();
            let (h, i, l, v) = (
                cfg.hidden_size,
                cfg.intermediate_size,
                cfg.num_hidden_layers,
                cfg.vocab_size,
            );
            let (q, kv) = (
                cfg.num_attention_heads * cfg.head_size(),
                cfg.kv_heads() * cfg.head_size(),
            );
            let head = h * c;
            let block = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
            head + match kind {
                MethodName::Head => unfreeze * block + if unfreeze > 0 { h } else { 0 },
                MethodName::Full => v * h + l * block + h,
                MethodName::Lora => l * (R * (h + q) + R * (h + kv)),
                MethodName::Dora => l * (R * (h + q) + R * (h + kv) + q + kv),
                MethodName::Ia3 => l * (2 * kv + i),
                MethodName::Adapter => l * 2 * (h * M + M + M * h + h),
                MethodName::Prefix => P * h + h * HID + HID + HID * (l * 2 * kv) + l * 2 * kv,
                MethodName::Prompt => P * h,
            }
        }
    }
}

const METHODS: [(MethodName, usize); 9] = [
    (MethodName::Head, 0),
    (MethodName::Head, 1),
    (MethodName::Full, 0),
    (MethodName::Lora, 0),
    (MethodName::Dora, 0),
    (MethodName::Ia3, 0),
    (MethodName::Adapter, 0),
    (MethodName::Prefix, 0),
    (MethodName::Prompt, 0),
];

fn contract(model_dir: &Path, family_pooling: Pooling) {
    let root = tempfile::tempdir().unwrap();
    let task = data(root.path());
    let runs = METHODS
        .iter()
        .map(|&(kind, unfreeze)| (kind, unfreeze, family_pooling))
        .chain([(MethodName::Head, 0, Pooling::Attention)]);
    for (kind, unfreeze, pooling) in runs {
        let what = format!(
            "{} (unfreeze {unfreeze}, {pooling} pooling) on {}",
            kind.as_str(),
            model_dir.display()
        );
        let base = load_model(model_dir, &Device::Cpu).unwrap();
        let b = batch(&base);
        let base_hidden = base.hidden_states(&b).unwrap();
        let mcfg = method(kind, unfreeze);

        // Structure: counts, no-op at init, gradients everywhere.
        let mut tm = TaskModel::build(
            load_model(model_dir, &Device::Cpu).unwrap(),
            mcfg.clone(),
            &head(pooling),
            2,
            7,
        )
        .unwrap();
        let names = trainable_names(&mut tm).unwrap();
        let params = Params::create(&mut tm, &names).unwrap();
        assert_eq!(
            params.count(),
            expected_count(&base, kind, unfreeze, pooling),
            "{what}: trainable count"
        );
        if matches!(
            kind,
            MethodName::Lora
                | MethodName::Dora
                | MethodName::Ia3
                | MethodName::Adapter
                | MethodName::Head
                | MethodName::Full
        ) {
            let h = tm.model.hidden_states(&b).unwrap();
            assert!(
                max_diff(&h, &base_hidden) < 1e-5,
                "{what}: not a no-op at init"
            );
        }
        let gold = Tensor::new(&[1u32, 0, 1], &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&tm.logits(&b).unwrap(), &gold).unwrap();
        let grads = loss.backward().unwrap();
        for p in &params.list {
            assert!(
                grads.get(&p.var).is_some(),
                "{what}: no gradient for {}",
                p.name
            );
        }
        drop(tm);

        // Training: the loss falls; save -> load gives the same outputs.
        let cfg = FinetuneConfig {
            method: mcfg,
            head: head(pooling),
            train: TrainConfig {
                epochs: 4,
                batch_size: 4,
                lr: match kind {
                    MethodName::Full => 2e-3,
                    MethodName::Head if unfreeze > 0 => 2e-3,
                    MethodName::Prompt | MethodName::Prefix => 3e-2,
                    _ => 1e-2,
                },
                warmup: 0.0,
                max_len: 32,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
        };
        let run_dir = root
            .path()
            .join(format!("run-{}-{unfreeze}-{pooling}", kind.as_str()));
        let writer = RunWriter::create(&run_dir, false).unwrap();
        let (mut tm, res) = finetune(
            load_model(model_dir, &Device::Cpu).unwrap(),
            &task,
            &cfg,
            &writer,
            false,
            &Silent,
        )
        .unwrap();
        let losses: Vec<f64> = res.outcome.history.iter().filter_map(|r| r.loss).collect();
        let first = losses[..3].iter().sum::<f64>() / 3.0;
        let last = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
        assert!(
            last < first * 0.8,
            "{what}: loss did not fall ({first:.4} -> {last:.4})"
        );
        let trained = tm.logits(&b).unwrap();
        let loaded = load_finetuned(&writer.path(""), &cfg, 2, model_dir, &Device::Cpu).unwrap();
        assert!(
            max_diff(&trained, &loaded.logits(&b).unwrap()) < 1e-5,
            "{what}: save -> load changed outputs"
        );
        if cfg.method.mergeable() {
            tm.model.network.merge_deltas().unwrap();
            assert!(
                max_diff(&trained, &tm.logits(&b).unwrap()) < 1e-4,
                "{what}: merged != unmerged"
            );
        }
    }
}

#[test]
fn every_method_on_a_bert_encoder() {
    let d = tempfile::tempdir().unwrap();
    write_tiny_bert(d.path(), "bert", 11).unwrap();
    contract(d.path(), Pooling::Mean);
}

#[test]
fn every_method_on_a_llama_decoder() {
    let d = tempfile::tempdir().unwrap();
    write_tiny_llama(d.path(), 11).unwrap();
    contract(d.path(), Pooling::Last);
}

/// The same contract on a GGUF whose block weights stay quantised (Q8_0): every method trains
/// with the frozen products decoding blocks on the fly, and the ones that train base weights
/// decode those.
#[test]
fn every_method_on_a_quantised_llama_gguf() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("tiny-q8.gguf");
    tuna_models::testing::write_tiny_llama_gguf(&path, 11, GgmlDType::Q8_0).unwrap();
    contract(&path, Pooling::Last);
}

/// Panics (a simulated kill) when training reaches a given optimiser step.
struct KillAt {
    phase: RefCell<String>,
    steps: Cell<u64>,
    at: u64,
}

impl Progress for KillAt {
    fn start(&self, phase: &str, _: u64) {
        *self.phase.borrow_mut() = phase.to_string();
        self.steps.set(0);
    }
    fn advance(&self, n: u64) {
        if *self.phase.borrow() == "training" {
            self.steps.set(self.steps.get() + n);
            if self.steps.get() >= self.at {
                panic!("simulated kill");
            }
        }
    }
    fn finish(&self) {}
}

#[test]
fn resume_after_a_kill_ends_like_an_uninterrupted_run() {
    let d = tempfile::tempdir().unwrap();
    let model_dir = d.path().join("model");
    write_tiny_bert(&model_dir, "bert", 5).unwrap();
    let task = data(d.path());
    let mut m = method(MethodName::Lora, 0);
    if let Method::Lora(l) = &mut m {
        l.dropout = 0.1;
    }
    let cfg = FinetuneConfig {
        method: m,
        head: HeadConfig {
            dropout: 0.1,
            ..head(Pooling::Mean)
        },
        train: TrainConfig {
            epochs: 3,
            batch_size: 4,
            lr: 1e-2,
            max_len: 32,
            checkpoint_every: 2,
            ..TrainConfig::default()
        },
    };
    let load = || load_model(&model_dir, &Device::Cpu).unwrap();
    let full = RunWriter::create(&d.path().join("a"), false).unwrap();
    let (tm_a, res_a) = finetune(load(), &task, &cfg, &full, false, &Silent).unwrap();

    let dir_b = d.path().join("b");
    let w = RunWriter::create(&dir_b, false).unwrap();
    let kill = KillAt {
        phase: RefCell::new(String::new()),
        steps: Cell::new(0),
        at: 9,
    };
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        finetune(load(), &task, &cfg, &w, false, &kill).map(|_| ())
    }));
    assert!(crashed.is_err(), "the simulated kill did not happen");
    assert!(
        w.path("checkpoint").join("state.json").exists(),
        "no checkpoint left behind"
    );
    drop(w); // the killed process's lock on its run goes with it
    let w = RunWriter::reopen(&dir_b, false).unwrap();
    let (tm_b, res_b) = finetune(load(), &task, &cfg, &w, true, &Silent).unwrap();
    assert_eq!(res_b.outcome.resumed_at, Some(8));
    assert_eq!(res_a.outcome.val.accuracy, res_b.outcome.val.accuracy);
    assert_eq!(res_a.outcome.steps, res_b.outcome.steps);
    let la: Vec<f64> = res_a
        .outcome
        .history
        .iter()
        .filter_map(|r| r.loss)
        .collect();
    let lb: Vec<f64> = res_b
        .outcome
        .history
        .iter()
        .filter_map(|r| r.loss)
        .collect();
    assert_eq!(la, lb, "loss curves differ after resume");
    let b = batch(&tm_a.model);
    assert_eq!(
        max_diff(&tm_a.logits(&b).unwrap(), &tm_b.logits(&b).unwrap()),
        0.0
    );
}
