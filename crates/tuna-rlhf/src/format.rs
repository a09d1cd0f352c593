//! How prompts and responses become tokens: the model's chat template, or the Alpaca prompt
//! format with the end-of-sequence token after the response. The response tokens are the ones
//! a model is trained and scored on.

use crate::records::Prompt;
use serde::{Deserialize, Serialize};
use tuna_core::{Error, Result};
use tuna_lm::chat::{ChatTemplate, Message};
use tuna_models::TextTokenizer;

/// Which prompt format to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// The model's own chat template (user turn, then the assistant's response).
    Chat,
    /// "Below is an instruction ... ### Instruction: ... ### Response:" (Alpaca, as LLMs from
    /// scratch ch07), the response followed by the end-of-sequence token.
    Alpaca,
}

impl FormatKind {
    /// Chat when the model has a template, else Alpaca.
    pub fn default_for(tok: &TextTokenizer) -> Self {
        if tok.chat_template.is_some() {
            FormatKind::Chat
        } else {
            FormatKind::Alpaca
        }
    }
}

/// A prompt and its response as token ids: `ids[..prompt_len]` is the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
}

impl Seq {
    /// Number of response tokens.
    pub fn response_len(&self) -> usize {
        self.ids.len() - self.prompt_len
    }
}

/// A format bound to a tokenizer.
pub struct Formatter {
    pub kind: FormatKind,
    tok: TextTokenizer,
    chat: Option<ChatTemplate>,
    /// Longest sequence in tokens (prompt + response).
    pub max_len: usize,
}

/// Stands in for the response when the chat template is rendered.
const PLACEHOLDER: &str = "\u{1}tuna-response\u{1}";

const ALPACA_HEAD: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.";

impl Formatter {
    pub fn new(kind: FormatKind, tok: &TextTokenizer, max_len: usize) -> Result<Self> {
        if max_len < 8 {
            return Err(Error::Invalid("--max-len must be at least 8 tokens".into()));
        }
        let chat = match kind {
            FormatKind::Chat => Some(ChatTemplate::from_tokenizer(tok)?),
            FormatKind::Alpaca => None,
        };
        Ok(Self {
            kind,
            tok: tok.clone(),
            chat,
            max_len,
        })
    }

    fn messages(p: &Prompt) -> Vec<Message> {
        match p {
            Prompt::Task { instruction, input } => {
                let text = if input.trim().is_empty() {
                    instruction.clone()
                } else {
                    format!("{instruction}\n\n{input}")
                };
                vec![Message::new("user", &text)]
            }
            Prompt::Dialogue(turns) => turns
                .iter()
                .enumerate()
                .map(|(i, t)| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, t))
                .collect(),
        }
    }

    /// The chat template's text before and after an assistant response to `p`: rendered with a
    /// placeholder response and cut there, so templates with and without a generation prompt
    /// give the same split.
    fn chat_split(chat: &ChatTemplate, p: &Prompt) -> Result<(String, String)> {
        let mut msgs = Self::messages(p);
        msgs.push(Message::new("assistant", PLACEHOLDER));
        let full = chat.render(&msgs, false)?;
        let at = full.rfind(PLACEHOLDER).ok_or_else(|| {
            Error::Invalid(
                "the chat template does not print the assistant's message: use --format alpaca"
                    .into(),
            )
        })?;
        let end = full[at + PLACEHOLDER.len()..].trim_end_matches('\n');
        Ok((full[..at].to_string(), end.to_string()))
    }

    /// The prompt text, ending where the response starts.
    pub fn prompt_text(&self, p: &Prompt) -> Result<String> {
        if let Some(chat) = &self.chat {
            return Ok(Self::chat_split(chat, p)?.0);
        }
        Ok(match p {
            Prompt::Task { instruction, input } => {
                let mut s = format!("{ALPACA_HEAD}\n\n### Instruction:\n{instruction}");
                if !input.trim().is_empty() {
                    s.push_str(&format!("\n\n### Input:\n{input}"));
                }
                s.push_str("\n\n### Response:\n");
                s
            }
            Prompt::Dialogue(turns) => {
                let mut s = String::new();
                for (i, t) in turns.iter().enumerate() {
                    let who = if i % 2 == 0 { "Human" } else { "Assistant" };
                    s.push_str(&format!("\n\n{who}: {t}"));
                }
                s.push_str("\n\nAssistant: ");
                s
            }
        })
    }

    /// The text that follows the prompt: the response and the end of the turn.
    pub fn completion_text(&self, p: &Prompt, response: &str) -> Result<String> {
        if let Some(chat) = &self.chat {
            return Ok(format!("{response}{}", Self::chat_split(chat, p)?.1));
        }
        let eos = self
            .tok
            .eos_id
            .map(|id| self.tok.decode(&[id], false))
            .transpose()?
            .unwrap_or_default();
        Ok(format!("{response}{eos}"))
    }

    /// Prompt token ids (special tokens as the tokenizer adds them).
    pub fn prompt_ids(&self, p: &Prompt) -> Result<Vec<u32>> {
        self.tok.encode(&self.prompt_text(p)?, usize::MAX)
    }

    /// Prompt and response as tokens, cut to `max_len`: the response keeps at most three
    /// quarters of it, and the prompt loses its start first.
    pub fn seq(&self, p: &Prompt, response: &str) -> Result<Seq> {
        let prompt = self.prompt_ids(p)?;
        let completion = self.tok.encode_raw(&self.completion_text(p, response)?)?;
        Ok(fit(prompt, completion, self.max_len))
    }

    /// The prompt alone, cut to leave `room` tokens for a response.
    pub fn prompt_seq(&self, p: &Prompt, room: usize) -> Result<Vec<u32>> {
        let mut ids = self.prompt_ids(p)?;
        let keep = self.max_len.saturating_sub(room).max(1);
        if ids.len() > keep {
            ids.drain(..ids.len() - keep);
        }
        Ok(ids)
    }
}

fn fit(mut prompt: Vec<u32>, mut completion: Vec<u32>, max_len: usize) -> Seq {
    if prompt.len() + completion.len() > max_len {
        tuna_models::truncation::record(max_len);
        let keep_c = completion.len().min(max_len * 3 / 4).max(1);
        completion.truncate(keep_c);
        let keep_p = max_len - keep_c;
        if prompt.len() > keep_p {
            prompt.drain(..prompt.len() - keep_p);
        }
    }
    let prompt_len = prompt.len();
    prompt.extend(completion);
    Seq {
        ids: prompt,
        prompt_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_response_and_the_end_of_the_prompt() {
        let s = fit((0..10).collect(), (100..104).collect(), 8);
        assert_eq!(s.ids, vec![6, 7, 8, 9, 100, 101, 102, 103]);
        assert_eq!((s.prompt_len, s.response_len()), (4, 4));
        let s = fit((0..3).collect(), (100..120).collect(), 8);
        assert_eq!((s.prompt_len, s.response_len()), (2, 6));
        let s = fit(vec![1, 2], vec![3], 8);
        assert_eq!((s.ids.clone(), s.prompt_len), (vec![1, 2, 3], 2));
    }
}
