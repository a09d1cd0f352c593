//! Chat with sources: a chat request that names an index (`"index"`, tuna's own field) has the
//! chunks closest to its last user message put before it as numbered sources, within a token
//! budget, exactly as `tuna ask` builds its prompt; the answer lists the sources it was given.

use crate::error::ApiError;
use tuna_lm::Message;
use tuna_models::TextTokenizer;
use tuna_rag::prompt::{prompt_budget, CONTEXT_TOKENS, DEFAULT_INSTRUCTION, MIN_BUDGET};
use tuna_rag::{grounded_prompt, Hit};

/// What grounding needs of the served causal LM: its tokenizer (to count the budget) and
/// positions.
#[derive(Clone)]
pub struct Grounding {
    pub tokenizer: TextTokenizer,
    pub max_positions: usize,
}

/// The content of the last user message: what retrieval searches for.
pub fn question(msgs: &[Message]) -> Result<&str, ApiError> {
    msgs.iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.as_str())
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "messages",
                "chat with an index needs a user message to search for",
            )
        })
}

impl Grounding {
    /// Replaces the last user message of `msgs` by the grounded prompt over `hits` (best first)
    /// after `instruction` (default `tuna ask`'s), in `context` tokens (default 1,024) that
    /// leave room for `max_tokens` new tokens; the sources that fit, in order.
    pub fn ground(
        &self,
        msgs: &mut [Message],
        hits: &[Hit],
        instruction: Option<&str>,
        (context, max_tokens): (Option<usize>, usize),
    ) -> Result<Vec<Hit>, ApiError> {
        let context = context.unwrap_or(CONTEXT_TOKENS);
        let budget = prompt_budget(context, self.max_positions, max_tokens);
        if budget < MIN_BUDGET {
            let msg = format!(
                "the model takes {} tokens: no room for sources with max_tokens {max_tokens}",
                self.max_positions
            );
            return Err(ApiError::invalid("max_tokens", msg));
        }
        let q = question(msgs)?.to_string();
        let count = |s: &str| -> tuna_rag::Result<usize> {
            self.tokenizer
                .encode_raw(s)
                .map(|ids| ids.len())
                .map_err(|e| tuna_rag::Error::Model(e.to_string()))
        };
        let instruction = instruction.unwrap_or(DEFAULT_INSTRUCTION);
        let p = grounded_prompt(instruction, &q, hits, budget, &count)
            .map_err(|e| ApiError::internal(format!("building the prompt: {e}")))?;
        if let Some(m) = msgs.iter_mut().rev().find(|m| m.role == "user") {
            m.content = p.text;
        }
        Ok(p.sources)
    }
}
