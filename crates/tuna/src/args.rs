//! Flag groups shared by several commands: the model, the data, and how texts are embedded.

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use std::path::PathBuf;
use tuna_data::{Column, Encoding, Format, ReadOptions, SplitSpec};
use tuna_nn::Pooling;
use tuna_train::cache::{default_cache_dir, EmbeddingCache};
use tuna_train::embedder::EmbedOptions;
use tuna_train::task_data::{load_task_data, DataSpec, TaskData};

/// Which model to run and where.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// The model: a Hugging Face directory (config.json, *.safetensors, tokenizer.json), a
    /// .gguf file, or hf:ORG/NAME[/FILE.gguf] (builds with the `hub` feature).
    #[arg(long, short)]
    pub model: String,
    /// Device: cpu, cuda or cuda:N (cuda needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelArgs {
    /// The device as given on the command line.
    pub fn device_name(&self) -> String {
        self.device.clone()
    }

    pub fn device(&self) -> Result<Device> {
        Ok(tuna_core::pick_device(&self.device)?)
    }

    /// Loads the model, naming it in any error; returns it with its files' fingerprint.
    pub fn load(&self) -> Result<(tuna_models::Model, String)> {
        let device = self.device()?;
        let path = tuna_models::resolve_model(&self.model)?;
        let model = tuna_models::load_model(&path, &device)
            .with_context(|| format!("loading model {}", self.model))?;
        let fp = tuna_train::cache::model_fingerprint(&path)?;
        tuna_train::alloc::return_freed_memory();
        Ok((model, fp))
    }
}

/// How a data file is read.
#[derive(Args, Clone)]
pub struct ReadArgs {
    /// File format: auto, csv, tsv, jsonl, label-text (`label text` per line, as SST-2), or
    /// lines (one unlabelled text per line). A folder with one subfolder per class and one
    /// text file per example is read as such whatever the format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: InputFormat,
    /// Text column(s): header names or 0-based indices (default: detected). Several columns
    /// (`--text-col title,description`, or the flag repeated) are joined, one line each.
    #[arg(long, value_delimiter = ',')]
    pub text_col: Vec<Column>,
    /// Label column: a header name or a 0-based index (default: detected).
    #[arg(long)]
    pub label_col: Option<Column>,
    /// The CSV/TSV files have a header row (default: detected).
    #[arg(long, conflicts_with = "no_header")]
    pub header: bool,
    /// The CSV/TSV files have no header row.
    #[arg(long)]
    pub no_header: bool,
    /// Text encoding of the files: utf-8, latin-1, windows-1252, or another WHATWG label
    /// (iso-8859-15, shift_jis, utf-16le, ...).
    #[arg(long, default_value = "utf-8")]
    pub encoding: Encoding,
    /// Accept quoted CSV fields that span lines even where a line inside reads like a row of
    /// its own (by default taken as an unbalanced quote and refused).
    #[arg(long)]
    pub allow_multiline: bool,
    /// Leave out rows that cannot be read (empty text, missing label, wrong number of fields,
    /// invalid JSON) and say how many, instead of stopping.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl ReadArgs {
    /// The same options as command-line arguments (for child processes).
    pub fn to_args(&self) -> Vec<String> {
        use clap::ValueEnum;
        let col = |c: &Column| match c {
            Column::Name(n) => n.clone(),
            Column::Index(i) => i.to_string(),
        };
        let mut a = vec![];
        if let Some(v) = self.format.to_possible_value() {
            a.extend(["--format".to_string(), v.get_name().to_string()]);
        }
        for c in &self.text_col {
            a.extend(["--text-col".to_string(), col(c)]);
        }
        if let Some(c) = &self.label_col {
            a.extend(["--label-col".to_string(), col(c)]);
        }
        a.extend(["--encoding".to_string(), self.encoding.to_string()]);
        for (on, flag) in [
            (self.header, "--header"),
            (self.no_header, "--no-header"),
            (self.allow_multiline, "--allow-multiline"),
            (self.skip_bad_rows, "--skip-bad-rows"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        a
    }

    /// Reads a file of texts (labels optional), printing how it was read.
    pub fn read_texts(
        &self,
        path: &std::path::Path,
        out: &crate::output::Output,
    ) -> Result<tuna_data::Dataset> {
        let ds = match self.format {
            InputFormat::Lines => tuna_data::read_texts(path, self.encoding)?,
            _ => tuna_data::read_dataset(path, &self.options(false)?)?,
        };
        for note in ds.notes() {
            out.line(note);
        }
        Ok(ds)
    }

    /// Read options for labelled formats (`lines` has no labels and is refused here).
    pub fn options(&self, labels_required: bool) -> Result<ReadOptions> {
        let format = match self.format {
            InputFormat::Auto => Format::Auto,
            InputFormat::Csv => Format::Csv,
            InputFormat::Tsv => Format::Tsv,
            InputFormat::Jsonl => Format::Jsonl,
            InputFormat::LabelText => Format::LabelText,
            InputFormat::Lines => anyhow::bail!(
                "--format lines holds no labels; labelled data needs csv, tsv, jsonl or label-text"
            ),
        };
        Ok(ReadOptions {
            format,
            encoding: self.encoding,
            header: match (self.header, self.no_header) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            text_columns: self.text_col.clone(),
            label_column: self.label_col.clone(),
            labels_required,
            allow_multiline: self.allow_multiline,
            skip_bad_rows: self.skip_bad_rows,
        })
    }
}

/// Layout of an input file.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Guess from the extension, else from the first lines.
    Auto,
    /// Comma-separated, quoted fields allowed.
    Csv,
    /// Tab-separated, quotes are plain characters.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// `label text` per line (SST-2).
    LabelText,
    /// One unlabelled text per line.
    Lines,
}

/// Labelled data for training and evaluation.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// One labelled file (or folder of class folders), split into train/validation/test by
    /// --split (stratified, seeded).
    #[arg(long, short)]
    pub data: Option<PathBuf>,
    /// Training file (instead of --data).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Validation file (with --train; default: the --split validation share of --train).
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Test file (with --train).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Train/validation/test shares in percent, for --data.
    #[arg(long, default_value = "80/10/10")]
    pub split: SplitSpec,
    /// Seed of the split and of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// With --data: undersample every class to the size of the smallest before splitting.
    #[arg(long)]
    pub balance: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

impl DataArgs {
    /// Reads and splits the data, and says what the user should check: how each file was read
    /// (format, header, columns), the rows left out, texts shared between the parts.
    pub fn load(&self, out: &crate::output::Output) -> Result<(TaskData, DataSpec)> {
        let spec = self.spec()?;
        let data = load_task_data(&spec)?;
        for note in data.notes() {
            out.line(note);
        }
        Ok((data, spec))
    }

    pub fn spec(&self) -> Result<DataSpec> {
        Ok(DataSpec {
            data: self.data.clone(),
            train: self.train.clone(),
            val: self.val.clone(),
            test: self.test.clone(),
            read: self.read.options(true)?,
            split: self.split,
            seed: self.seed,
            balance: self.balance,
        })
    }
}

/// How texts become vectors.
#[derive(Args, Clone)]
pub struct EmbedArgs {
    /// Pooling of token states: mean, cls, last, or attention (a learned weighting, trained
    /// with a finetuned head). Default: attention for `--method head` on a frozen backbone;
    /// otherwise mean for encoders and last for decoders.
    #[arg(long)]
    pub pooling: Option<Pooling>,
    /// Longest input in tokens; longer texts are truncated (default: 256 to embed, 128 to
    /// finetune).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Scale every embedding to unit length.
    #[arg(long)]
    pub normalize: bool,
    /// Embedding cache folder (default: $TUNA_CACHE_DIR, else ~/.cache/tuna).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl EmbedArgs {
    /// Settings for fixed embeddings (no learned pooling).
    pub fn options(&self, model: &tuna_models::Model) -> anyhow::Result<EmbedOptions> {
        let pooling = self.pooling.unwrap_or(model.info.family.default_pooling());
        if pooling.is_learned() {
            anyhow::bail!(
                "--pooling {pooling} is learned with a finetuned head (`tuna train --method \
                 head`); fixed embeddings need cls, mean or last"
            );
        }
        Ok(EmbedOptions {
            pooling,
            max_len: self.max_len.unwrap_or(256),
            batch_size: self.batch_size,
            normalize: self.normalize,
        })
    }

    pub fn cache(&self) -> Option<EmbeddingCache> {
        (!self.no_cache)
            .then(|| EmbeddingCache::new(self.cache_dir.clone().unwrap_or_else(default_cache_dir)))
    }
}
