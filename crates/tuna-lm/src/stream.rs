//! Generated tokens to text as they come: incremental detokenisation that never emits half a
//! UTF-8 character, and stop strings that end generation without ever being shown.

use tuna_core::Result;
use tuna_models::TextTokenizer;

/// The text of the tokens generated so far, released piece by piece. It keeps no tokenizer
/// (each call is handed the model's), so it can outlive a borrow of the model.
pub struct TextStream {
    stops: Vec<String>,
    ids: Vec<u32>,
    /// Bytes of the text already released.
    released: usize,
    /// The final text once a stop string was seen.
    stopped: Option<String>,
}

impl TextStream {
    /// A stream that ends at the first of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ids: Vec::new(),
            released: 0,
            stopped: None,
        }
    }

    /// Adds a token; returns the text that is now safe to show (possibly empty). After a stop
    /// string, [`TextStream::stopped`] is true and nothing more is released.
    pub fn push(&mut self, tokenizer: &TextTokenizer, id: u32) -> Result<String> {
        if self.stopped.is_some() {
            return Ok(String::new());
        }
        self.ids.push(id);
        let text = tokenizer.decode(&self.ids, true)?;
        if let Some(cut) = self.first_stop(&text) {
            let piece = text[self.released.min(cut)..cut].to_string();
            self.released = cut;
            self.stopped = Some(text[..cut].to_string());
            return Ok(piece);
        }
        // Hold back an unfinished character and anything that may be the start of a stop string.
        let mut safe = text.len();
        if text.ends_with('\u{FFFD}') {
            safe -= '\u{FFFD}'.len_utf8();
        }
        safe = safe.min(text.len() - self.partial_stop(&text));
        if safe <= self.released || !text.is_char_boundary(safe) {
            return Ok(String::new());
        }
        let piece = text[self.released..safe].to_string();
        self.released = safe;
        Ok(piece)
    }

    /// True once a stop string has been generated.
    pub fn stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Whatever is still held back (at the end of generation).
    pub fn flush(&mut self, tokenizer: &TextTokenizer) -> Result<String> {
        let text = self.text(tokenizer)?;
        let piece = text.get(self.released..).unwrap_or("").to_string();
        self.released = text.len();
        Ok(piece)
    }

    /// The whole generated text, cut before a stop string.
    pub fn text(&self, tokenizer: &TextTokenizer) -> Result<String> {
        match &self.stopped {
            Some(t) => Ok(t.clone()),
            None => tokenizer.decode(&self.ids, true),
        }
    }

    /// Byte offset of the earliest stop string in `text`.
    fn first_stop(&self, text: &str) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
    }

    /// Length of the longest end of `text` that is the beginning of a stop string.
    fn partial_stop(&self, text: &str) -> usize {
        let mut best = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if i > best && text.ends_with(&s[..i]) {
                    best = i;
                }
            }
        }
        best
    }
}
