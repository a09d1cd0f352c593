//! Request bodies of the OpenAI-compatible endpoints, and their checks: every value out of range
//! is a 400 that names the field. Fields OpenAI has and tuna does not use are ignored.

use crate::error::ApiError;
use crate::limits::Limits;
use serde::Deserialize;
use serde_json::Value;
use tuna_lm::{Message, Sampling};

/// The sampling fields shared by chat and completions, as OpenAI names them.
#[derive(Debug, Default, Deserialize)]
pub struct SamplingFields {
    /// 0 = greedy; OpenAI's default is 1.
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    /// The newer name of `max_tokens` in chat.
    pub max_completion_tokens: Option<i64>,
    /// A string or up to 4 strings.
    pub stop: Option<Value>,
    pub seed: Option<i64>,
    /// Choices per prompt: only 1.
    pub n: Option<u64>,
    /// Stream the answer as server-sent events.
    pub stream: Option<bool>,
    /// `{"include_usage": true}`: a last chunk (before `[DONE]`) with the usage.
    pub stream_options: Option<Value>,
    /// Do not stop at end-of-sequence / end-of-turn tokens (as vLLM names it).
    pub ignore_eos: Option<bool>,
    /// Add the generated token ids to each choice (`token_ids`, as vLLM names it).
    pub return_token_ids: Option<bool>,
}

/// Every field of a request besides its own ones: the sampling fields, read by
/// [`SamplingFields::read`] (kept as JSON so that a wrong type is reported with its field's
/// name, which serde cannot do through `flatten`).
pub type Rest = serde_json::Map<String, Value>;

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One message: `content` is a string or a list of `{"type": "text", "text": ...}` parts.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Value,
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// A string or a list of strings.
    pub prompt: Value,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    /// A string or a list of strings.
    pub input: Value,
    /// `float` (default) or `base64` (little-endian f32, as the `openai` client asks).
    pub encoding_format: Option<String>,
}

/// `POST /v1/classify`.
#[derive(Debug, Deserialize)]
pub struct ClassifyRequest {
    pub model: String,
    /// A string or a list of strings.
    pub input: Value,
}

/// Checked generation settings of one request.
#[derive(Debug, Clone)]
pub struct GenParams {
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    pub return_token_ids: bool,
}

impl SamplingFields {
    /// The sampling fields among a request's other fields (unknown ones are ignored); 400
    /// naming the field of a wrong type.
    pub fn read(rest: &Rest) -> Result<Self, ApiError> {
        crate::extract::from_value(Value::Object(rest.clone()))
    }

    /// Whether the answer is streamed.
    pub fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed answer ends with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The settings, each checked against OpenAI's ranges and the server's limits.
    pub fn check(&self, limits: &Limits) -> Result<GenParams, ApiError> {
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(ApiError::invalid("n", format!("n must be 1, got {n}")));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                "temperature",
                format!("temperature must be between 0 and 2, got {temperature}"),
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid(
                "top_p",
                format!("top_p must be in (0, 1], got {top_p}"),
            ));
        }
        let (field, asked) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => ("max_completion_tokens", Some(m)),
            (None, m) => ("max_tokens", m),
        };
        let max_tokens = match asked {
            None => limits.default_max_tokens.min(limits.max_tokens),
            Some(m) if m < 1 => {
                return Err(ApiError::invalid(
                    field,
                    format!("{field} must be at least 1, got {m}"),
                ))
            }
            Some(m) if m as u64 > limits.max_tokens as u64 => {
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "{field} is {m}; this server generates at most {}",
                        limits.max_tokens
                    ),
                ))
            }
            Some(m) => m as usize,
        };
        Ok(GenParams {
            max_tokens,
            sampling: Sampling {
                temperature,
                top_k: None,
                top_p: (top_p < 1.0).then_some(top_p),
                seed: self.seed.unwrap_or(42) as u64,
            },
            stop: stop_strings(self.stop.as_ref())?,
            ignore_eos: self.ignore_eos.unwrap_or(false),
            return_token_ids: self.return_token_ids.unwrap_or(false),
        })
    }
}

/// `stop`: null, a string, or a list of at most 4 non-empty strings.
fn stop_strings(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    const WHAT: &str = "stop must be a string or a list of at most 4 non-empty strings";
    let bad = || ApiError::wrong_type("stop", WHAT);
    let list = match v {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(String::from).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad()),
    };
    if list.len() > 4 || list.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", WHAT));
    }
    Ok(list)
}

/// A string or a non-empty list of strings (`prompt`, `input`), at most `max` of them.
pub fn texts(v: &Value, field: &str, max: usize) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::wrong_type(
            field,
            format!("{field} must be a string or a list of strings"),
        )
    };
    let list = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(String::from).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(bad()),
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} is an empty list"),
        ));
    }
    if list.len() > max {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} has {} texts; this server takes at most {max} per request",
                list.len()
            ),
        ));
    }
    Ok(list)
}

/// `input` of embeddings and classification: as [`texts`], and no text empty.
pub fn inputs(v: &Value, max: usize) -> Result<Vec<String>, ApiError> {
    let list = texts(v, "input", max)?;
    match list.iter().position(String::is_empty) {
        Some(i) => Err(ApiError::invalid(
            "input",
            format!("input {i} is an empty string: send some text"),
        )),
        None => Ok(list),
    }
}

/// The messages as the chat template takes them; 400 for an empty list, an unknown role or a
/// content that is not text.
pub fn messages(list: &[ChatMessage]) -> Result<Vec<Message>, ApiError> {
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "messages is empty: send at least one message",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let param = format!("messages[{i}]");
            if !matches!(
                m.role.as_str(),
                "system" | "user" | "assistant" | "developer"
            ) {
                return Err(ApiError::invalid(
                    &param,
                    format!(
                        "role `{}` is not one of system, developer, user, assistant",
                        m.role
                    ),
                ));
            }
            let role = if m.role == "developer" {
                "system"
            } else {
                &m.role
            };
            Ok(Message::new(role, &content_text(&m.content, &param)?))
        })
        .collect()
}

/// A message's text: a string, or its text parts joined.
fn content_text(v: &Value, param: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::wrong_type(
            &format!("{param}.content"),
            "content must be a string or a list of {\"type\": \"text\", \"text\": ...} parts",
        )
    };
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(
                |p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => Ok(t.as_str()),
                    _ => Err(bad()),
                },
            )
            .collect::<Result<Vec<_>, _>>()
            .map(|t| t.concat()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> SamplingFields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn values_out_of_range_name_their_field() {
        let l = Limits::default();
        let bad = [
            (json!({"temperature": 3}), "temperature"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"max_tokens": 5000}), "max_tokens"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"n": 2}), "n"),
            (json!({"stop": [1]}), "stop"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
        ];
        for (v, param) in bad {
            let e = fields(v.clone()).check(&l).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{v}");
        }
        let p = fields(json!({"temperature": 0, "max_tokens": 7, "stop": "x", "seed": -1}))
            .check(&l)
            .unwrap();
        assert_eq!(
            (p.max_tokens, p.stop.len(), p.sampling.temperature),
            (7, 1, 0.0)
        );
        assert_eq!(fields(json!({})).check(&l).unwrap().max_tokens, 256);
    }

    #[test]
    fn messages_and_texts_are_checked() {
        assert!(messages(&[]).is_err());
        let m = ChatMessage {
            role: "user".into(),
            content: json!([{"type": "text", "text": "hi"}]),
        };
        assert_eq!(messages(&[m]).unwrap()[0].content, "hi");
        let m = ChatMessage {
            role: "robot".into(),
            content: json!("x"),
        };
        assert!(messages(&[m]).is_err());
        assert_eq!(texts(&json!("a"), "input", 2).unwrap(), vec!["a"]);
        assert!(texts(&json!([1, 2]), "input", 2).is_err());
        assert!(texts(&json!(["a", "b", "c"]), "input", 2).is_err());
        assert!(texts(&json!([]), "input", 2).is_err());
    }
}
