//! Response bodies in OpenAI's shapes (`chat.completion`, `chat.completion.chunk`,
//! `text_completion`, embeddings `list`), with tuna's classification answer beside them.

use serde_json::{json, Value};
use tuna_lm::{Generation, StopReason};

/// OpenAI's `finish_reason`: `stop` at a stop token or string, `length` at the token limit or
/// the end of the model's positions.
pub fn finish_reason(g: &Generation) -> &'static str {
    match g.stop {
        StopReason::StopToken | StopReason::StopString => "stop",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
    }
}

/// The `usage` of some generations.
pub fn usage(gens: &[Generation]) -> Value {
    let prompt: usize = gens.iter().map(|g| g.prompt_tokens).sum();
    let completion: usize = gens.iter().map(|g| g.tokens.len()).sum();
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// Identity of one response: its id, the model named and the creation time.
pub struct Head<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub created: u64,
    /// Add each choice's generated token ids (`token_ids`).
    pub token_ids: bool,
}

fn with_ids(mut choice: Value, g: &Generation, head: &Head) -> Value {
    if head.token_ids {
        choice["token_ids"] = json!(g.tokens);
    }
    choice
}

/// A whole chat answer.
pub fn chat(head: &Head, g: &Generation) -> Value {
    let choice = json!({
        "index": 0,
        "message": {"role": "assistant", "content": g.text},
        "logprobs": null,
        "finish_reason": finish_reason(g),
    });
    json!({
        "id": head.id, "object": "chat.completion", "created": head.created, "model": head.model,
        "choices": [with_ids(choice, g, head)],
        "usage": usage(std::slice::from_ref(g)),
    })
}

/// A whole completion answer, one choice per prompt.
pub fn completion(head: &Head, gens: &[Generation]) -> Value {
    let choices: Vec<Value> = gens
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let c = json!({"index": i, "text": g.text, "logprobs": null, "finish_reason": finish_reason(g)});
            with_ids(c, g, head)
        })
        .collect();
    json!({
        "id": head.id, "object": "text_completion", "created": head.created, "model": head.model,
        "choices": choices, "usage": usage(gens),
    })
}

/// One streamed chunk: new `text` of choice `index`, or its end (`done`).
pub fn chunk(
    head: &Head,
    chat: bool,
    index: usize,
    text: Option<&str>,
    done: Option<&Generation>,
) -> Value {
    let finish = done.map(finish_reason);
    let mut choice = if chat {
        let delta = match text {
            Some(t) => json!({"content": t}),
            None => json!({}),
        };
        json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish})
    } else {
        json!({"index": index, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish})
    };
    if let Some(g) = done {
        choice = with_ids(choice, g, head);
    }
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    json!({"id": head.id, "object": object, "created": head.created, "model": head.model, "choices": [choice]})
}

/// The last chunk of a stream that asked for the usage: no choices, the usage of them all.
pub fn usage_chunk(head: &Head, chat: bool, gens: &[Generation]) -> Value {
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    json!({"id": head.id, "object": object, "created": head.created, "model": head.model,
        "choices": [], "usage": usage(gens)})
}

/// The first chunk of a streamed chat answer: the assistant's role.
pub fn role_chunk(head: &Head) -> Value {
    json!({"id": head.id, "object": "chat.completion.chunk", "created": head.created, "model": head.model,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(stop: StopReason) -> Generation {
        Generation {
            text: "hi".into(),
            tokens: vec![5, 6],
            stop,
            prompt_tokens: 3,
            cached_tokens: 0,
            prefill_seconds: 0.0,
            decode_seconds: 0.0,
        }
    }

    #[test]
    fn answers_have_openai_s_fields() {
        let head = Head {
            id: "c-1",
            model: "lm",
            created: 7,
            token_ids: true,
        };
        let c = chat(&head, &g(StopReason::StopToken));
        assert_eq!(c["choices"][0]["message"]["content"], "hi");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(c["choices"][0]["token_ids"], json!([5, 6]));
        assert_eq!(c["usage"]["total_tokens"], 5);
        let c = completion(
            &head,
            &[g(StopReason::MaxTokens), g(StopReason::ContextFull)],
        );
        assert_eq!(c["choices"][1]["index"], 1);
        assert_eq!(c["choices"][1]["finish_reason"], "length");
        let k = chunk(&head, true, 0, Some("x"), None);
        assert_eq!(k["choices"][0]["delta"]["content"], "x");
        assert!(k["choices"][0]["finish_reason"].is_null());
    }
}
