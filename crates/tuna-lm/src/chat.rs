//! Chat prompts: messages rendered with the model's own chat template (Jinja, from
//! `tokenizer_config.json` or GGUF metadata), and the tokens that end an assistant turn.
//!
//! A chat template is code written by the model's author and runs on every prompt, so one
//! rendering has a budget: [`TEMPLATE_FUEL`] template instructions (minijinja's fuel) and
//! [`output_limit`] bytes of output. A template that spends either stops with an error that
//! names where it came from, instead of spinning forever or filling the memory. Values a
//! template builds (a string doubled in a loop) are capped at [`TEMPLATE_MEMORY`] bytes: past
//! it `tuna` stops with a message naming the template (see `tuna_core::memory_cap`; an
//! allocation failure cannot become an error in Rust).

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::{Deserialize, Serialize};
use std::io::Write;
use tuna_core::memory_cap::with_memory_cap;
use tuna_core::{Error, Result};
use tuna_models::TextTokenizer;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Template instructions one rendering may execute. A real template spends a few dozen per
/// message (SmolLM2's: about 30), so this is hundreds of thousands of messages.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// Most bytes one rendering may allocate beyond its output budget: 1 GiB.
pub const TEMPLATE_MEMORY: usize = 1 << 30;

/// Most bytes one rendering may write: 1 MiB plus 8 times the messages' text, which leaves room
/// for any system prompt and markup a template adds around the messages.
pub fn output_limit(messages: &[Message]) -> usize {
    let text: usize = messages
        .iter()
        .map(|m| m.content.len() + m.role.len())
        .sum();
    (1 << 20) + 8 * text
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    /// Where the template came from, for errors.
    origin: String,
}

/// The rendered prompt, refusing to grow past `limit` bytes.
struct LimitedOutput {
    text: Vec<u8>,
    limit: usize,
}

impl Write for LimitedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("output limit"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ChatTemplate {
    /// The template the tokenizer carries; an error that says so when it has none.
    pub fn from_tokenizer(tok: &TextTokenizer) -> Result<Self> {
        let source = tok.chat_template.clone().ok_or_else(|| {
            Error::Invalid(
                "the model has no chat template (none in tokenizer_config.json or the GGUF \
                 metadata): use plain prompts instead"
                    .into(),
            )
        })?;
        let name = |id: Option<u32>| {
            id.and_then(|i| tok.decode(&[i], false).ok())
                .unwrap_or_default()
        };
        let mut t = Self::new(source, name(tok.bos_id), name(tok.eos_id))?;
        if let Some(origin) = &tok.chat_template_origin {
            t.origin = format!("the chat template of {origin}");
        }
        Ok(t)
    }

    /// Compiles `source`; `bos` and `eos` are the texts of the special tokens it may print.
    pub fn new(source: String, bos: String, eos: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| Error::Invalid(format!("cannot parse the chat template: {e}")))?;
        Ok(Self {
            env,
            bos,
            eos,
            origin: "the chat template".into(),
        })
    }

    /// The prompt text for `messages`, ending with the assistant's turn opened when
    /// `add_generation_prompt`; an error when the template runs past its budget (see the
    /// module docs) or fails.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let limit = output_limit(messages);
        let mut out = LimitedOutput {
            text: Vec::new(),
            limit,
        };
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos,
            eos_token => self.eos,
        };
        let stop = format!(
            "{} built values past its memory cap while rendering {} messages; the template is \
             code from the model's files: fix it there, or use plain prompts instead of chat",
            self.origin,
            messages.len()
        );
        let rendered = with_memory_cap(TEMPLATE_MEMORY + 2 * limit, &stop, || {
            tmpl.render_captured_to(ctx, &mut out)
        });
        match rendered {
            Ok(_) => String::from_utf8(out.text)
                .map_err(|_| Error::Invalid(format!("{} wrote invalid UTF-8", self.origin))),
            Err(e) => Err(self.render_error(&e, messages.len(), limit)),
        }
    }

    /// The error of a failed rendering, naming the template's origin and, when it ran out of
    /// budget, which budget.
    fn render_error(&self, e: &JinjaError, n_messages: usize, limit: usize) -> Error {
        let origin = &self.origin;
        let n_messages = match n_messages {
            1 => "1 message".to_string(),
            n => format!("{n} messages"),
        };
        let what = match e.kind() {
            ErrorKind::OutOfFuel => format!(
                "ran past its budget of {TEMPLATE_FUEL} template instructions for \
                 {n_messages} messages (a loop that does not end, or one far too long)"
            ),
            ErrorKind::WriteFailure => {
                format!("wrote more than its budget of {limit} bytes for {n_messages} messages")
            }
            _ => return Error::Invalid(format!("cannot render {origin}: {e}")),
        };
        Error::Invalid(format!(
            "{origin} {what}; the template is code from the model's files: fix it there, \
             or use plain prompts instead of chat"
        ))
    }
}

/// Token ids that end a turn: end-of-sequence and the usual end-of-turn markers the vocabulary
/// has (`<|im_end|>`, `<|eot_id|>`, `<|end_of_text|>`, `<|endoftext|>`, `</s>`).
pub fn stop_token_ids(tok: &TextTokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = tok.eos_id.into_iter().collect();
    for name in [
        "<|im_end|>",
        "<|eot_id|>",
        "<|end_of_text|>",
        "<|endoftext|>",
        "</s>",
    ] {
        if let Some(id) = tok.inner().token_to_id(name) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    // SmolLM2-Instruct's template, as its tokenizer_config.json has it.
    const SMOL: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_like_transformers() {
        let t = ChatTemplate::new(SMOL.into(), String::new(), "<|im_end|>".into()).unwrap();
        let got = t.render(&[Message::new("user", "Hi")], true).unwrap();
        // transformers: tok.apply_chat_template([{"role": "user", "content": "Hi"}],
        //     tokenize=False, add_generation_prompt=True)
        assert_eq!(
            got,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let src = "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ bos_token }}{{ messages[0].content.strip() }}";
        let t = ChatTemplate::new(src.into(), "<s>".into(), "</s>".into()).unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "  x ")], false).unwrap(),
            "<s>x"
        );
        let err = t.render(&[Message::new("system", "x")], false).unwrap_err();
        assert!(err.to_string().contains("first must be user"), "{err}");
    }

    /// A template from a named file, as `from_tokenizer` makes it.
    fn hostile(src: &str) -> ChatTemplate {
        let mut t = ChatTemplate::new(src.into(), String::new(), String::new()).unwrap();
        t.origin = "the chat template of m/tokenizer_config.json (`chat_template`)".into();
        t
    }

    #[test]
    fn an_output_bomb_stops_at_the_output_budget_naming_the_file() {
        // Before the budget this wrote 10^11 bytes (tuna grew to 2.7 GB and aborted).
        let t = hostile(
            "{% for i in range(100000) %}{% for j in range(100000) %}0123456789{% endfor %}{% endfor %}",
        );
        let start = std::time::Instant::now();
        let err = t.render(&[Message::new("user", "Hi")], true).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("m/tokenizer_config.json") && msg.contains("bytes"),
            "{msg}"
        );
        eprintln!("output bomb stopped after {:?}", start.elapsed());
    }

    #[test]
    fn a_silent_spin_stops_at_the_instruction_budget_naming_the_file() {
        // Before the budget this ran 10^10 loop turns without writing anything.
        let t = hostile(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        );
        let start = std::time::Instant::now();
        let err = t.render(&[Message::new("user", "Hi")], true).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("m/tokenizer_config.json") && msg.contains("template instructions"),
            "{msg}"
        );
        eprintln!("spin stopped after {:?}", start.elapsed());
    }

    #[test]
    fn a_long_real_conversation_stays_well_inside_the_budget() {
        let t = ChatTemplate::new(SMOL.into(), String::new(), String::new()).unwrap();
        let long = "word ".repeat(20_000);
        let msgs: Vec<Message> = (0..2_000)
            .map(|i| {
                Message::new(
                    if i % 2 == 0 { "user" } else { "assistant" },
                    &long[..(i % 7) * 10_000 + 5],
                )
            })
            .collect();
        let out = t.render(&msgs, true).unwrap();
        assert!(out.ends_with("<|im_start|>assistant\n"));
    }
}
