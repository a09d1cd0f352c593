//! `tuna generate` and `tuna chat`: text from a causal LM, streamed as it comes.

use crate::args::ModelArgs;
use crate::output::Output;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use tuna_lm::{
    stop_token_ids, ChatTemplate, GenerateConfig, Generation, Generator, Message, Sampling, Session,
};

/// How tokens are chosen and when generation stops.
#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// 0 = greedy (always the most likely token); higher = more random.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample among the K most likely tokens only.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens that together have probability P.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Seed of sampling (the same seed gives the same text).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop when the text contains this string (repeatable); it is not printed.
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Stop at this token id (repeatable), besides end-of-sequence and end-of-turn tokens.
    #[arg(long = "stop-token")]
    pub stop_token: Vec<u32>,
    /// Do not stop at end-of-sequence / end-of-turn tokens.
    #[arg(long)]
    pub ignore_eos: bool,
}

impl SamplingArgs {
    pub fn config(&self, gen: &Generator) -> Result<GenerateConfig> {
        let sampling = Sampling {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
        };
        sampling.validate().map_err(anyhow::Error::msg)?;
        let mut stop_tokens = self.stop_token.clone();
        if !self.ignore_eos {
            stop_tokens.extend(stop_token_ids(gen.tokenizer()));
        }
        Ok(GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            sampling,
            stop_strings: self.stop.clone(),
            stop_tokens,
        })
    }
}

#[derive(Args)]
pub struct GenerateCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt(s). Several prompts are generated as one batch.
    prompts: Vec<String>,
    /// File with one prompt per line (`\n` inside a prompt written as two characters),
    /// generated in batches; results as JSON lines on stdout.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Wrap each prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message (with --chat).
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Prompts per batch with --input or several prompts.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Generate with this adapter on the model, unmerged: a PEFT adapter folder (LoRA, DoRA,
    /// IA3, bottleneck, prefix or prompt tuning) or a run that keeps one in adapter/ (tuna sft,
    /// dpo, ppo).
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

impl GenerateCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let mut prompts = self.prompts.clone();
        if let Some(path) = &self.input {
            let raw = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            prompts.extend(
                raw.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.replace("\\n", "\n")),
            );
        }
        if prompts.is_empty() {
            let mut s = String::new();
            std::io::stdin().read_to_string_checked(&mut s)?;
            if !s.trim().is_empty() {
                prompts.push(s);
            }
        }
        if prompts.is_empty() {
            bail!("no prompt: give it as an argument, with --input FILE, or on standard input");
        }
        let (mut model, _) = self.model.load()?;
        let mut virt = None;
        if let Some(a) = &self.adapter {
            let adapted = tuna_serve::with_lm_adapter(model, a)
                .with_context(|| format!("--adapter {}", a.display()))?;
            (model, virt) = (adapted.model, adapted.virt);
        }
        let gen = Generator::new(&model)?.with_virtual_tokens(virt);
        let cfg = self.sampling.config(&gen)?;
        let template = if self.chat {
            Some(ChatTemplate::from_tokenizer(gen.tokenizer())?)
        } else {
            None
        };
        let encode = |p: &str| -> Result<Vec<u32>> {
            Ok(match &template {
                Some(t) => {
                    let mut msgs = Vec::new();
                    if let Some(s) = &self.system {
                        msgs.push(Message::new("system", s));
                    }
                    msgs.push(Message::new("user", p));
                    gen.tokenizer().encode_raw(&t.render(&msgs, true)?)?
                }
                None => gen.tokenizer().encode(p, usize::MAX)?,
            })
        };

        if prompts.len() == 1 && self.input.is_none() {
            let ids = encode(&prompts[0])?;
            let stream = !out.json && !out.quiet;
            let g = gen.generate(&ids, &cfg, &mut |piece| {
                if stream {
                    show(piece)
                } else {
                    Ok(())
                }
            })?;
            if stream {
                println!();
            } else if !out.json {
                println!("{}", g.text);
            }
            report(out, &g);
            out.result(json!({"ok": true, "command": "generate", "generation": g, "tokens_per_second": rate(&g)}));
            return Ok(());
        }

        let mut all = Vec::with_capacity(prompts.len());
        for chunk in prompts.chunks(self.batch_size.max(1)) {
            let ids = chunk
                .iter()
                .map(|p| encode(p))
                .collect::<Result<Vec<_>>>()?;
            for (p, g) in chunk.iter().zip(gen.generate_batch(&ids, &cfg)?) {
                if !out.json {
                    println!(
                        "{}",
                        json!({"prompt": p, "text": g.text, "tokens": g.tokens.len(), "stop": g.stop})
                    );
                }
                all.push(g);
            }
        }
        out.result(json!({"ok": true, "command": "generate", "generations": all}));
        Ok(())
    }
}

/// Prints a piece of streamed text at once.
fn show(piece: &str) -> tuna_core::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(piece.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| tuna_core::Error::io("standard output", e))
}

fn rate(g: &Generation) -> f64 {
    g.tokens.len().saturating_sub(1) as f64 / g.decode_seconds.max(1e-9)
}

fn report(out: &Output, g: &Generation) {
    if out.quiet {
        return;
    }
    eprintln!(
        "[{} prompt tokens in {:.2}s; {} new tokens, {:.1} tokens/s; stop: {}]",
        g.prompt_tokens,
        g.prefill_seconds,
        g.tokens.len(),
        rate(g),
        serde_json::to_value(g.stop)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    );
}

#[derive(Args)]
pub struct ChatCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// System message that opens the conversation.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

impl ChatCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let (model, _) = self.model.load()?;
        let gen = Generator::new(&model)?;
        let cfg = self.sampling.config(&gen)?;
        let template = ChatTemplate::from_tokenizer(gen.tokenizer())?;
        let max_pos = model.info.max_positions;
        let tty = std::io::stdin().is_terminal();
        let mut history: Vec<Message> = self
            .system
            .iter()
            .map(|s| Message::new("system", s))
            .collect();
        let keep = history.len();
        let mut session = Session::default();
        if tty && !out.quiet {
            eprintln!(
                "chat with {} (/reset clears the conversation, /exit or Ctrl-D ends it)",
                self.model.model
            );
        }
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        loop {
            if tty {
                eprint!("> ");
                std::io::stderr().flush()?;
            }
            let Some(line) = lines.next() else { break };
            let line = line?;
            match line.trim() {
                "" => continue,
                "/exit" | "/quit" => break,
                "/reset" => {
                    history.truncate(keep);
                    session.clear();
                    continue;
                }
                _ => {}
            }
            history.push(Message::new("user", line.trim()));
            let mut ids = gen
                .tokenizer()
                .encode_raw(&template.render(&history, true)?)?;
            // Forget the oldest turns when the conversation outgrows the model.
            while ids.len() + cfg.max_new_tokens > max_pos && history.len() > keep + 1 {
                history.remove(keep);
                ids = gen
                    .tokenizer()
                    .encode_raw(&template.render(&history, true)?)?;
            }
            // Earlier turns are usually still in the session's cache: only the new ones run.
            let g = gen.generate_in(&mut session, &ids, &cfg, &mut show)?;
            println!();
            if out.json {
                println!(
                    "{}",
                    json!({
                        "user": line.trim(),
                        "assistant": g.text,
                        "tokens": g.tokens.len(),
                        "prompt_tokens": g.prompt_tokens,
                        "cached_tokens": g.cached_tokens,
                    })
                );
            }
            history.push(Message::new("assistant", g.text.trim()));
        }
        Ok(())
    }
}

/// `read_to_string` that says which stream failed.
trait ReadAll {
    fn read_to_string_checked(&mut self, s: &mut String) -> Result<()>;
}

impl ReadAll for std::io::Stdin {
    fn read_to_string_checked(&mut self, s: &mut String) -> Result<()> {
        use std::io::Read;
        if self.is_terminal() {
            return Ok(());
        }
        self.read_to_string(s)
            .context("reading the prompt from standard input")?;
        Ok(())
    }
}
