//! `tuna`: adapt pretrained transformers to new tasks, from one binary.

mod args;
mod commands;
mod device_check;
mod output;
mod progress;
mod retrieval;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Adapt pretrained transformers (BERT-style encoders, Llama-style decoders) to your data:
/// embed texts, train classifiers on frozen features, predict — with no Python at run time.
#[derive(Parser)]
#[command(name = "tuna", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one machine-readable JSON line as the last line of output.
    #[arg(long, global = true)]
    json: bool,
    /// Worker threads for tensor math and classifiers (default: all cores).
    #[arg(long, global = true, env = "TUNA_THREADS")]
    threads: Option<usize>,
    /// Hide progress bars and informational messages.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// How a decoder's block weights are held, from a GGUF file or a Hugging Face checkpoint in
    /// F16/BF16: `stored` keeps their stored type (less memory, faster decoding; products
    /// decode them on the fly), `f32` decodes them at load. Base weights a method trains are
    /// decoded either way.
    #[arg(long, global = true, env = "TUNA_DTYPE", value_enum, default_value_t = WeightType::Stored)]
    dtype: WeightType,
    /// When training on a quantised base, keep the frozen feed-forward layers' activations
    /// instead of forming them again in the backward: faster steps (about 15% on SmolLM2),
    /// more memory (the default recomputes them).
    #[arg(long, global = true, env = "TUNA_NO_RECOMPUTE")]
    no_recompute: bool,
    /// More log output (-v info, -vv debug). An error is one message; with -v and
    /// RUST_BACKTRACE=1 it also shows the backtrace of where it arose.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// How stored weights are held after loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum WeightType {
    /// In the file's own type (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, F16, BF16).
    Stored,
    /// Decoded to f32.
    F32,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts with a frozen model (pooled vectors, cached on disk).
    Embed(commands::embed::EmbedCmd),
    /// Train a method on labelled data and evaluate it: features, head (--unfreeze-last N),
    /// full, lora, adapter, prefix or prompt.
    Train(Box<commands::train::TrainCmd>),
    /// Run several methods on the same data, split and seed and report accuracy, trainable
    /// parameters, time and memory side by side.
    Compare(Box<commands::compare::CompareCmd>),
    /// Fold a LoRA run into its base model and write a plain Hugging Face checkpoint.
    Merge(commands::merge::MergeCmd),
    /// Write a LoRA adapter for other runtimes: a GGUF adapter file llama.cpp loads (--lora).
    Export(commands::export::ExportCmd),
    /// Label new texts with a finished run.
    Predict(commands::predict::PredictCmd),
    /// Generate text with a causal LM (streamed; several prompts are batched).
    Generate(commands::generate::GenerateCmd),
    /// Chat with a causal LM through its chat template.
    Chat(commands::generate::ChatCmd),
    /// Classify with a causal LM and k-shot prompts (in-context learning).
    Icl(Box<commands::icl::IclCmd>),
    /// Rank prompt templates on the validation part and keep the best (hard prompt tuning).
    PromptSearch(Box<commands::prompt_search::PromptSearchCmd>),
    /// Supervised finetuning of a causal LM on instruction data (full or LoRA).
    Sft(Box<commands::sft::SftCmd>),
    /// Train a reward model on preference pairs, or score responses with one.
    Reward(commands::reward::RewardCmd),
    /// Direct preference optimisation of a causal LM on preference pairs.
    Dpo(Box<commands::dpo::DpoCmd>),
    /// PPO of a LoRA policy against a reward model, with a KL penalty to the starting model.
    Ppo(Box<commands::ppo::PpoCmd>),
    /// Build and maintain a vector index of documents (add, rm, stats, eval).
    Index(commands::index::IndexCmd),
    /// The chunks of an index closest to a query.
    Search(commands::search::SearchCmd),
    /// Answer a question from an index with a causal LM, citing the sources.
    Ask(Box<commands::ask::AskCmd>),
    /// Show what a model is: family, size, layers, tokenizer.
    Info(commands::info::InfoCmd),
    /// Serve a model, its adapters and classification runs over an OpenAI-compatible HTTP
    /// API (chat, completions, embeddings, models, classify).
    Serve(Box<commands::serve::ServeCmd>),
}

fn main() {
    tuna_train::alloc::keep_freed_memory();
    tuna_core::threads::one_pool();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.verbose == 0 {
        // A user error is one message. anyhow and candle capture a backtrace into every error
        // when RUST_BACKTRACE is set (candle prints it as part of the message); the library
        // variable turns that off and leaves panics' backtraces (RUST_BACKTRACE) as they are.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    if let Some(n) = cli.threads {
        // Read by candle's and the classifiers' thread pools at their first use.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    tuna_models::registry::set_stored_as_f32(cli.dtype == WeightType::F32);
    tuna_nn::swiglu_mlp::set_recompute(!cli.no_recompute);
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TUNA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let out = output::Output::new(cli.json, cli.quiet, cli.verbose > 0);
    if let Err(e) = device_check::check(&matches) {
        out.error(&e);
        std::process::exit(1);
    }
    let result = match cli.command {
        Command::Embed(c) => c.run(&out),
        Command::Index(c) => c.run(&out),
        Command::Search(c) => c.run(&out),
        Command::Ask(c) => c.run(&out),
        Command::Train(c) => c.run(&out),
        Command::Predict(c) => c.run(&out),
        Command::Info(c) => c.run(&out),
        Command::Compare(c) => c.run(&out),
        Command::Merge(c) => c.run(&out),
        Command::Export(c) => c.run(&out),
        Command::Generate(c) => c.run(&out),
        Command::Chat(c) => c.run(&out),
        Command::Icl(c) => c.run(&out),
        Command::PromptSearch(c) => c.run(&out),
        Command::Sft(c) => c.run(&out),
        Command::Ppo(c) => c.run(&out),
        Command::Dpo(c) => c.run(&out),
        Command::Reward(c) => c.run(&out),
        Command::Serve(c) => c.run(&out),
    };
    if let Err(e) = result {
        out.error(&e);
        std::process::exit(1);
    }
}
