//! `tuna ask`: retrieve the chunks closest to a question, give them to a causal LM as numbered
//! sources within a token budget, stream its answer and list the sources.

use crate::commands::generate::SamplingArgs;
use crate::output::Output;
use crate::retrieval::{IndexArgs, IndexEncoder};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use std::io::Write;
use tuna_lm::{ChatTemplate, GenerateConfig, Generation, Generator, Message};
use tuna_models::Model;
use tuna_rag::prompt::{prompt_budget, CONTEXT_TOKENS, DEFAULT_INSTRUCTION, MIN_BUDGET};
use tuna_rag::{grounded_prompt, GroundedPrompt, Hit, Store};

/// How the answer prompt is built.
#[derive(Args, Clone)]
pub struct AnswerArgs {
    /// Chunks to retrieve (those that fit the budget become sources).
    #[arg(long, short, default_value_t = 3)]
    pub k: usize,
    /// Most tokens for instruction, sources and question together.
    #[arg(long, default_value_t = CONTEXT_TOKENS)]
    pub context_tokens: usize,
    /// Instruction placed before the sources.
    #[arg(long, default_value = DEFAULT_INSTRUCTION)]
    pub instruction: String,
    /// Send the prompt as plain text instead of a user message in the model's chat template.
    #[arg(long)]
    pub no_chat: bool,
}

/// A causal LM that answers from retrieved sources.
pub struct Answerer<'a> {
    gen: Generator<'a>,
    template: Option<ChatTemplate>,
    args: AnswerArgs,
    /// Tokens for instruction, sources and question: the flag, capped by the model's positions
    /// less the answer and the chat template's own tokens.
    budget: usize,
}

impl<'a> Answerer<'a> {
    pub fn new(model: &'a Model, args: AnswerArgs, max_new_tokens: usize) -> Result<Self> {
        let gen = Generator::new(model)?;
        let template =
            if args.no_chat {
                None
            } else {
                Some(ChatTemplate::from_tokenizer(gen.tokenizer()).context(
                    "the model has no chat template: pass --no-chat to send a plain prompt",
                )?)
            };
        let room = prompt_budget(usize::MAX, model.info.max_positions, max_new_tokens);
        if room < MIN_BUDGET {
            anyhow::bail!(
                "{} takes {} tokens: no room for sources with {max_new_tokens} new tokens",
                model.info.source.display(),
                model.info.max_positions
            );
        }
        Ok(Answerer {
            gen,
            template,
            budget: args.context_tokens.min(room),
            args,
        })
    }

    pub fn generator(&self) -> &Generator<'a> {
        &self.gen
    }

    /// The prompt for `question` over `hits` (best first), within the budget.
    pub fn prompt(&self, question: &str, hits: &[Hit]) -> Result<GroundedPrompt> {
        let tok = self.gen.tokenizer();
        let count = |s: &str| -> tuna_rag::Result<usize> {
            tok.encode_raw(s)
                .map(|ids| ids.len())
                .map_err(|e| tuna_rag::Error::Model(e.to_string()))
        };
        Ok(grounded_prompt(
            &self.args.instruction,
            question,
            hits,
            self.budget,
            &count,
        )?)
    }

    /// Generates the answer to a built prompt, passing each new piece of text to `on_piece`.
    pub fn answer(
        &self,
        prompt: &GroundedPrompt,
        cfg: &GenerateConfig,
        on_piece: &mut dyn FnMut(&str) -> tuna_core::Result<()>,
    ) -> Result<Generation> {
        let tok = self.gen.tokenizer();
        let ids = match &self.template {
            Some(t) => tok.encode_raw(&t.render(&[Message::new("user", &prompt.text)], true)?)?,
            None => tok.encode(&format!("{}\nAnswer:", prompt.text), usize::MAX)?,
        };
        Ok(self.gen.generate(&ids, cfg, on_piece)?)
    }
}

/// Embeds one query and searches.
pub fn retrieve(
    store: &mut dyn Store,
    encoder: &IndexEncoder,
    query: &str,
    k: usize,
) -> Result<Vec<Hit>> {
    let v = encoder.vectors(&[query.to_string()])?;
    Ok(store.search(&v[0], k)?)
}

#[derive(Args)]
pub struct AskCmd {
    #[command(flatten)]
    index: IndexArgs,
    /// The causal LM that answers (a .gguf file or a Hugging Face directory).
    #[arg(long, short)]
    model: String,
    /// The question.
    question: String,
    #[command(flatten)]
    answer: AnswerArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

impl AskCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let (mut store, meta) = self.index.open_built()?;
        let encoder = self.index.encoder(&meta)?;
        let hits = retrieve(store.as_mut(), &encoder, &self.question, self.answer.k)?;
        if hits.is_empty() {
            anyhow::bail!("index {} has no chunks to answer from", self.index.index);
        }
        let device = tuna_core::pick_device(&self.index.device)?;
        let path = tuna_models::resolve_model(&self.model)?;
        let lm = tuna_models::load_model(&path, &device)
            .with_context(|| format!("loading model {}", self.model))?;
        let answerer = Answerer::new(&lm, self.answer.clone(), self.sampling.max_new_tokens)?;
        let cfg = self.sampling.config(answerer.generator())?;
        let prompt = answerer.prompt(&self.question, &hits)?;
        let stream = !out.json && !out.quiet;
        let g = answerer.answer(&prompt, &cfg, &mut |piece| {
            if stream {
                let mut o = std::io::stdout().lock();
                o.write_all(piece.as_bytes())
                    .and_then(|_| o.flush())
                    .map_err(|e| tuna_core::Error::io("standard output", e))
            } else {
                Ok(())
            }
        })?;
        if stream {
            println!();
        }
        if !out.json {
            if out.quiet {
                println!("{}", g.text.trim());
            }
            out.line("\nSources:");
            for (i, h) in prompt.sources.iter().enumerate() {
                out.line(format!(
                    "[{}] {} (chunk {}, score {:.3})",
                    i + 1,
                    h.source,
                    h.seq,
                    h.score
                ));
            }
        }
        out.result(json!({
            "ok": true, "command": "ask", "question": self.question, "answer": g.text.trim(),
            "sources": prompt.sources, "prompt_tokens": g.prompt_tokens,
            "new_tokens": g.tokens.len(), "stop": g.stop,
        }));
        Ok(())
    }
}
