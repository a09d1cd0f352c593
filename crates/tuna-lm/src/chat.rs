//! Chat prompts: messages rendered with the model's own chat template (Jinja, from
//! `tokenizer_config.json` or GGUF metadata), and the tokens that end an assistant turn.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::{Deserialize, Serialize};
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

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
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
        Self::new(source, name(tok.bos_id), name(tok.eos_id))
    }

    /// Compiles `source`; `bos` and `eos` are the texts of the special tokens it may print.
    pub fn new(source: String, bos: String, eos: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| Error::Invalid(format!("cannot parse the chat template: {e}")))?;
        Ok(Self { env, bos, eos })
    }

    /// The prompt text for `messages`, ending with the assistant's turn opened when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Invalid(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| Error::Invalid(format!("cannot render the chat template: {e}")))
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
}
