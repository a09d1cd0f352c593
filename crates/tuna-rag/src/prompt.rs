//! The grounded prompt of `ask`: retrieved chunks as numbered sources, as many as fit the
//! token budget (best first), then the question.

use crate::error::Result;
use crate::store::Hit;

/// The instruction before the sources.
/// Tokens for instruction, sources and question together when nothing else is said.
pub const CONTEXT_TOKENS: usize = 1024;

/// The fewest tokens left for instruction, sources and question worth answering from.
pub const MIN_BUDGET: usize = 16;

/// Tokens kept for a chat template's own tokens around the prompt.
pub const TEMPLATE_TOKENS: usize = 32;

/// The budget for instruction, sources and question: `context` tokens, at most what a model of
/// `max_positions` leaves after `max_new_tokens` and the chat template.
pub fn prompt_budget(context: usize, max_positions: usize, max_new_tokens: usize) -> usize {
    context.min(max_positions.saturating_sub(max_new_tokens + TEMPLATE_TOKENS))
}

pub const DEFAULT_INSTRUCTION: &str =
    "Read the sources and answer the question in as few words as possible.";

/// A prompt and the sources it holds, numbered from 1 in order.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundedPrompt {
    pub text: String,
    pub sources: Vec<Hit>,
}

fn source_block(n: usize, hit: &Hit, text: &str) -> String {
    match &hit.title {
        Some(t) => format!("[{n}] {t}: {text}\n\n"),
        None => format!("[{n}] {text}\n\n"),
    }
}

/// Builds the prompt within `budget` tokens (counted by `count`). Sources that do not fit are
/// left out; when not even the first fits, its text is cut to fit.
pub fn grounded_prompt(
    instruction: &str,
    question: &str,
    hits: &[Hit],
    budget: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<GroundedPrompt> {
    let head = format!("{instruction}\n\nSources:\n");
    let tail = format!("Question: {question}");
    let mut used = count(&head)? + count(&tail)?;
    let mut body = String::new();
    let mut sources = Vec::new();
    for hit in hits {
        let block = source_block(sources.len() + 1, hit, &hit.text);
        let n = count(&block)?;
        if used + n > budget {
            if sources.is_empty() {
                // Keep the best source, cut to the words that fit.
                let words: Vec<&str> = hit.text.split_whitespace().collect();
                let (mut lo, mut hi) = (0, words.len());
                while lo < hi {
                    let mid = (lo + hi).div_ceil(2);
                    let b = source_block(1, hit, &words[..mid].join(" "));
                    if used + count(&b)? <= budget {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                if lo > 0 {
                    body.push_str(&source_block(1, hit, &words[..lo].join(" ")));
                    sources.push(hit.clone());
                }
            }
            break;
        }
        used += n;
        body.push_str(&block);
        sources.push(hit.clone());
    }
    Ok(GroundedPrompt {
        text: format!("{head}{body}{tail}"),
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str) -> Hit {
        Hit {
            source: "s".into(),
            title: Some("T".into()),
            seq: 0,
            text: text.into(),
            score: 1.0,
        }
    }

    fn words(s: &str) -> Result<usize> {
        Ok(s.split_whitespace().count())
    }

    #[test]
    fn numbers_sources_and_stops_at_the_budget() {
        let hits = [hit("a b c"), hit("d e f"), hit("g h i")];
        // instruction (1) + "Sources:" (1) + "Question: q" (2) = 4, each block 5.
        let p = grounded_prompt("Answer.", "q", &hits, 14, &words).unwrap();
        assert_eq!(p.sources.len(), 2);
        assert!(p.text.contains("[1] T: a b c"));
        assert!(p.text.contains("[2] T: d e f"));
        assert!(!p.text.contains("g h i"));
        assert!(p.text.ends_with("Question: q"));
    }

    #[test]
    fn cuts_the_first_source_when_nothing_fits() {
        let hits = [hit("a b c d e f g h")];
        let p = grounded_prompt("Answer.", "q", &hits, 8, &words).unwrap();
        assert_eq!(p.sources.len(), 1);
        assert!(p.text.contains("[1] T: a b\n"), "{}", p.text);
    }
}
