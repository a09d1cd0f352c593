//! Splitting a document into chunks of at most `size` tokens, cut at paragraph boundaries where
//! possible (else at a sentence end), with `overlap` tokens repeated across a cut that falls
//! inside a paragraph.

use serde::{Deserialize, Serialize};

/// How documents are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkConfig {
    /// Most tokens in a chunk.
    pub size: usize,
    /// Tokens shared by two neighbouring chunks cut inside a paragraph.
    pub overlap: usize,
}

impl ChunkConfig {
    /// Checks that chunks can make progress.
    pub fn validate(&self) -> crate::Result<()> {
        if self.size == 0 || self.overlap >= self.size {
            return Err(crate::Error::invalid(format!(
                "chunk size must be positive and overlap smaller than it (size {}, overlap {})",
                self.size, self.overlap
            )));
        }
        Ok(())
    }
}

/// One piece of a document: its text (a slice of the document) and where it lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub seq: usize,
    pub text: String,
    /// Byte range in the document.
    pub start: usize,
    pub end: usize,
    /// Tokens in the chunk.
    pub tokens: usize,
}

/// Cuts `text` given the byte span of each of its tokens (in order, as a tokenizer reports them).
pub fn chunk_text(text: &str, spans: &[(usize, usize)], cfg: &ChunkConfig) -> Vec<Chunk> {
    let n = spans.len();
    if n == 0 {
        return vec![];
    }
    // A token starts a paragraph when a blank line separates it from the previous one, and
    // starts a sentence when the previous token ends one.
    let mut para = vec![false; n + 1];
    let mut sent = vec![false; n + 1];
    para[n] = true;
    sent[n] = true;
    for i in 1..n {
        let gap = text.get(spans[i - 1].1..spans[i].0).unwrap_or("");
        para[i] = gap.matches('\n').count() >= 2;
        let prev = text.get(spans[i - 1].0..spans[i - 1].1).unwrap_or("");
        sent[i] = para[i]
            || (!gap.is_empty() && prev.ends_with(['.', '!', '?', ':', ';']))
            || gap.contains('\n');
    }
    let mut chunks = Vec::new();
    let mut start = 0;
    loop {
        let end = if n - start <= cfg.size {
            n
        } else {
            let limit = start + cfg.size;
            // A paragraph end in the last three quarters, else a sentence end in the last half.
            let (lo_para, lo) = (start + cfg.size / 4 + 1, start + cfg.size / 2 + 1);
            (lo_para..=limit)
                .rev()
                .find(|&i| para[i])
                .or_else(|| (lo..=limit).rev().find(|&i| sent[i]))
                .unwrap_or(limit)
        };
        let (a, b) = (spans[start].0, spans[end - 1].1);
        chunks.push(Chunk {
            seq: chunks.len(),
            text: text[a..b].to_string(),
            start: a,
            end: b,
            tokens: end - start,
        });
        if end == n {
            return chunks;
        }
        start = if para[end] {
            end
        } else {
            end.saturating_sub(cfg.overlap).max(start + 1)
        };
    }
}

/// Byte spans of the whitespace-separated words of `text`: tokens for text without a tokenizer
/// (and for tests).
pub fn whitespace_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = vec![];
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(usize, usize)> {
        whitespace_spans(text)
    }

    #[test]
    fn short_text_is_one_chunk() {
        let t = "one two three";
        let c = chunk_text(
            t,
            &words(t),
            &ChunkConfig {
                size: 10,
                overlap: 2,
            },
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text, t);
        assert_eq!(c[0].tokens, 3);
    }

    #[test]
    fn cuts_at_paragraphs_without_overlap() {
        let t = "a b c d e f.\n\ng h i j k l.\n\nm n o";
        let c = chunk_text(
            t,
            &words(t),
            &ChunkConfig {
                size: 8,
                overlap: 3,
            },
        );
        let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a b c d e f.", "g h i j k l.", "m n o"]);
        assert_eq!(c[1].start, t.find('g').unwrap());
    }

    #[test]
    fn long_paragraph_windows_overlap_and_cover_everything() {
        let t: String = (0..50).map(|i| format!("w{i} ")).collect();
        let spans = words(&t);
        let cfg = ChunkConfig {
            size: 10,
            overlap: 3,
        };
        let c = chunk_text(&t, &spans, &cfg);
        assert!(c.iter().all(|c| c.tokens <= 10));
        for w in c.windows(2) {
            assert!(w[1].start < w[0].end, "neighbours overlap");
        }
        assert_eq!(c[0].start, 0);
        assert_eq!(c.last().unwrap().end, t.trim_end().len());
    }

    #[test]
    fn prefers_sentence_ends_inside_a_paragraph() {
        let t = "a b c d e f g. h i j k l m n o p";
        let c = chunk_text(
            t,
            &words(t),
            &ChunkConfig {
                size: 10,
                overlap: 2,
            },
        );
        assert_eq!(c[0].text, "a b c d e f g.");
    }

    #[test]
    fn invalid_config_is_refused() {
        assert!(ChunkConfig {
            size: 4,
            overlap: 4
        }
        .validate()
        .is_err());
        assert!(ChunkConfig {
            size: 0,
            overlap: 0
        }
        .validate()
        .is_err());
    }
}
