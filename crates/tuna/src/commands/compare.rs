//! `tuna compare`: runs several methods on the same data, split and seed (each in its own
//! process, so time and peak memory are its own) and writes a report with a chart.

use crate::args::{DataArgs, ModelArgs};
use crate::output::Output;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use tuna_adapt::MethodName;
use tuna_train::compare::{accuracy_chart, markdown, CompareRow};

#[derive(Args)]
pub struct CompareCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Methods to run: features, last-N, icl and every finetuning method (head, full, lora, ...);
    /// default: features, last-2 and every finetuning method. `icl` is in-context learning
    /// with --icl-model (shots and demonstrations by
    /// `--method-args "icl=--shots 4 --select nearest --encoder ENCODER"`).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Folder of the report and of each method's run (finished runs found there are reused).
    #[arg(long, short)]
    out: PathBuf,
    /// Passes over the training data (finetuning methods).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Longest input in tokens.
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// The causal LM of the `icl` method (a .gguf file or a Hugging Face directory).
    #[arg(long)]
    icl_model: Option<String>,
    /// The `icl` method's prompt template, with `{text}` and `{label}`.
    #[arg(long, conflicts_with = "icl_prompt_file")]
    icl_template: Option<String>,
    /// The `icl` method's prompt file (as saved by `tuna prompt-search`).
    #[arg(long)]
    icl_prompt_file: Option<PathBuf>,
    /// Results of the PyTorch reference run (bench/reference/train_reference.py --out FILE), shown beside.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// One more argument for every `tuna train` run (repeat: `--extra=--prompt-init --extra='Classify:'`).
    #[arg(long, allow_hyphen_values = true)]
    extra: Vec<String>,
    /// Arguments for one method only, as METHOD=ARGS split at spaces (repeat for several), e.g.
    /// `--method-args "head=--head-hidden 384 --epochs 10"`.
    #[arg(long, allow_hyphen_values = true)]
    method_args: Vec<String>,
}

impl CompareCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        std::fs::create_dir_all(self.out.join("runs"))
            .with_context(|| format!("creating {}", self.out.display()))?;
        let reference = match &self.reference {
            Some(p) => Some(read_reference(p)?),
            None => None,
        };
        let mut rows = vec![];
        let mut failed = vec![];
        for m in &self.methods() {
            out.line(format!("== {m}"));
            let run_dir = self.out.join("runs").join(m);
            let result = if run_dir.join("metrics.json").exists() {
                out.line(format!(
                    "   reusing the finished run in {}",
                    run_dir.display()
                ));
                stored_result(&run_dir)?
            } else {
                match self.train(m, &run_dir) {
                    Ok(v) => v,
                    Err(e) => {
                        // Keep going: one method's failure should not cost the others' runs.
                        out.line(format!("   failed: {e:#}"));
                        failed.push(m.clone());
                        continue;
                    }
                }
            };
            let acc = |v: &Value, part: &str| v[part]["accuracy"].as_f64().unwrap_or(f64::NAN);
            let row = CompareRow {
                method: m.clone(),
                test_accuracy: acc(&result, "test"),
                val_accuracy: acc(&result, "validation"),
                trainable_parameters: result["trainable_parameters"].as_u64().unwrap_or(0),
                seconds: result["total_seconds"].as_f64().unwrap_or(0.0),
                peak_rss_bytes: result["peak_rss_bytes"].as_u64().unwrap_or(0),
                reference_accuracy: reference
                    .as_ref()
                    .and_then(|r| r.iter().find(|(name, _)| name == m).map(|(_, a)| *a)),
                run_dir: run_dir.display().to_string(),
            };
            out.line(format!(
                "   test accuracy {:.2}%, {} trainable parameters, {:.0}s, peak {:.0} MiB",
                row.test_accuracy * 100.0,
                row.trainable_parameters,
                row.seconds,
                row.peak_rss_bytes as f64 / (1u64 << 20) as f64
            ));
            rows.push(row);
        }
        let mut setup = format!(
            "Model `{}`; data {}; seed {}; {} epochs, max {} tokens; threads {}. Each method ran as its own `tuna train` process (time = its wall clock, memory = its peak resident set).",
            self.model.model,
            self.data_description(),
            self.data.seed,
            self.epochs,
            self.max_len,
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into()),
        );
        for a in self.extra.iter().map(|a| format!(" `{a}`")) {
            setup.push_str(&a);
        }
        for a in &self.method_args {
            setup.push_str(&format!(" Per method: `{a}`."));
        }
        let md = markdown("Method comparison", &setup, &rows);
        std::fs::write(self.out.join("report.md"), &md)?;
        std::fs::write(
            self.out.join("accuracy.svg"),
            accuracy_chart("Test accuracy by method", &rows),
        )?;
        std::fs::write(
            self.out.join("report.json"),
            serde_json::to_string_pretty(&rows)?,
        )?;
        out.line(md);
        if !failed.is_empty() {
            bail!(
                "methods that failed: {} (rerun to retry them; finished runs are reused)",
                failed.join(", ")
            );
        }
        out.result(json!({"ok": true, "command": "compare", "report": self.out.join("report.md"), "rows": rows}));
        Ok(())
    }

    fn data_description(&self) -> String {
        let d = &self.data;
        let name = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        match &d.data {
            Some(p) => format!("`{}` split {:?}", p.display(), d.split.to_string()),
            None => format!(
                "train `{}`, validation `{}`, test `{}`",
                name(&d.train),
                name(&d.val),
                name(&d.test)
            ),
        }
    }

    /// The methods to run: `--methods`, or features, head, last-2 and the other finetuning
    /// methods of the registry.
    fn methods(&self) -> Vec<String> {
        if !self.methods.is_empty() {
            return self.methods.clone();
        }
        let mut m = vec!["features".to_string(), "head".into(), "last-2".into()];
        m.extend(
            MethodName::ALL
                .iter()
                .filter(|n| **n != MethodName::Head)
                .map(|n| n.as_str().to_string()),
        );
        m
    }

    /// Runs one method in a child `tuna train` (or `tuna icl`) and returns its JSON result.
    fn train(&self, method: &str, run_dir: &Path) -> Result<Value> {
        if method == "icl" {
            return self.icl(run_dir);
        }
        let mut cmd = Command::new(current_exe()?);
        cmd.arg("--json").arg("--quiet").arg("train");
        match method {
            "features" => {
                // Measure the real cost: embed instead of reading a cache from an earlier run.
                cmd.args(["--method", "features", "--no-cache"]);
            }
            m if m.starts_with("last-") => {
                let n: usize = m[5..]
                    .parse()
                    .map_err(|_| anyhow!("bad method {m}: use last-N"))?;
                cmd.args(["--method", "head", "--unfreeze-last", &n.to_string()]);
            }
            m if MethodName::parse(m).is_some() => {
                cmd.args(["--method", method]);
            }
            other => bail!(
                "unknown method `{other}` (features, last-N, icl, or one of: {})",
                MethodName::ALL.map(|m| m.as_str()).join(", ")
            ),
        }
        let own = self.own_args(method)?;
        if method != "features" {
            if !own.iter().any(|a| a == "--epochs") {
                cmd.args(["--epochs", &self.epochs.to_string()]);
            }
            let partial = run_dir.with_file_name(format!("{method}.partial"));
            if partial.join("checkpoint").exists() || partial.join("checkpoint.old").exists() {
                cmd.arg("--resume");
            }
        }
        cmd.args([
            "--max-len",
            &self.max_len.to_string(),
            "--model",
            &self.model.model,
        ]);
        cmd.args(["--device", &self.model.device_name()]);
        self.data_args(&mut cmd);
        cmd.args(&self.extra);
        cmd.args(&own);
        cmd.arg("--out").arg(run_dir).arg("--overwrite");
        run_child(cmd, method)
    }

    /// The arguments and method-specific flags of one method from `--method-args`.
    fn own_args(&self, method: &str) -> Result<Vec<String>> {
        let mut own: Vec<String> = vec![];
        for spec in &self.method_args {
            match spec.split_once('=') {
                Some((name, args)) if name == method => {
                    own.extend(args.split_whitespace().map(String::from));
                }
                Some(_) => {}
                None => bail!("--method-args wants METHOD=ARGS, got `{spec}`"),
            }
        }
        Ok(own)
    }

    /// In-context learning with the --icl-model, on the same data, split and seed; its result
    /// is kept in the run folder's metrics.json like a training run's.
    fn icl(&self, run_dir: &Path) -> Result<Value> {
        let Some(lm) = &self.icl_model else {
            bail!("the icl method needs --icl-model (a causal LM)");
        };
        let mut cmd = Command::new(current_exe()?);
        cmd.args(["--json", "--quiet", "icl", "--model", lm]);
        cmd.args(["--device", &self.model.device_name()]);
        match (&self.icl_template, &self.icl_prompt_file) {
            (Some(t), _) => cmd.args(["--template", t]),
            (None, Some(p)) => cmd.arg("--prompt-file").arg(p),
            (None, None) => bail!("the icl method needs --icl-template or --icl-prompt-file"),
        };
        self.data_args(&mut cmd);
        cmd.args(self.own_args("icl")?);
        let v = run_child(cmd, "icl")?;
        std::fs::create_dir_all(run_dir)?;
        tuna_train::run_marker::write(run_dir)?;
        tuna_core::fsutil::atomic_write(
            &run_dir.join("metrics.json"),
            serde_json::to_string_pretty(&v)?.as_bytes(),
        )?;
        Ok(v)
    }

    /// The data, split and seed flags shared by every child.
    fn data_args(&self, cmd: &mut Command) {
        let d = &self.data;
        for (flag, p) in [
            ("--data", &d.data),
            ("--train", &d.train),
            ("--val", &d.val),
            ("--test", &d.test),
        ] {
            if let Some(p) = p {
                cmd.arg(flag).arg(p);
            }
        }
        cmd.args([
            "--split",
            &d.split.to_string(),
            "--seed",
            &d.seed.to_string(),
        ]);
        if d.balance {
            cmd.arg("--balance");
        }
        cmd.args(d.read.to_args());
    }
}

/// The running binary's path. If it was replaced while comparing, Linux reports the old file as
/// "(deleted)": run the new one at the same path.
fn current_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(
        match exe.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
            Some(p) => PathBuf::from(p),
            None => exe,
        },
    )
}

/// Runs a child tuna command and returns its JSON result, or its error.
fn run_child(mut cmd: Command, method: &str) -> Result<Value> {
    let output = cmd
        .output()
        .with_context(|| format!("running tuna for {method}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("{}");
    let v: Value = serde_json::from_str(last).unwrap_or(Value::Null);
    if !output.status.success() || v["ok"] != Value::Bool(true) {
        bail!(
            "{method} failed: {}{}",
            v["error"].as_str().unwrap_or(""),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(v)
}

/// The result of a finished run, from its `metrics.json`.
fn stored_result(dir: &Path) -> Result<Value> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json"))?)?;
    Ok(m)
}

/// `(method, test accuracy in 0..1)` pairs from a reference results file.
fn read_reference(path: &Path) -> Result<Vec<(String, f64)>> {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let rows = v
        .as_array()
        .ok_or_else(|| anyhow!("{}: expected a JSON list", path.display()))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let m = r["method"].as_str()?.to_string();
            let a = r["test_accuracy"]
                .as_f64()
                .or_else(|| r["test_acc"].as_f64())?;
            // The reference writes percent.
            Some((m, if a > 1.0 { a / 100.0 } else { a }))
        })
        .collect())
}
