//! Text to padded id batches, around a Hugging Face `tokenizers` tokenizer.
//!
//! The tokenizer's own padding and truncation settings are switched off at load (MiniLM's
//! `tokenizer.json` pads everything to 128 tokens); batches are padded here, on the right, to the
//! longest sequence of the batch, with an attention mask.

use candle_core::{Device, Tensor};
use std::path::Path;
use tokenizers::Tokenizer;
use tuna_core::{contain, Error, Result};

/// A tokenizer with the special-token facts a model needs.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Id used for padding.
    pub pad_id: u32,
    /// Beginning-of-sequence id, if the model has one.
    pub bos_id: Option<u32>,
    /// End-of-sequence id, if the model has one.
    pub eos_id: Option<u32>,
    /// Prepend `bos_id` to every encoded text (GGUF `add_bos_token`); tokenizer.json files carry
    /// their own post-processor instead.
    pub add_bos: bool,
    /// The model's chat template (Jinja), when the checkpoint ships one.
    pub chat_template: Option<String>,
    /// Where [`Self::chat_template`] was read from (a file, or a GGUF metadata key of a file),
    /// for error messages about the template.
    pub chat_template_origin: Option<String>,
}

/// One padded batch: `ids`, `mask` (1 = token, 0 = padding) and `type_ids`, all (B, T) u32.
pub struct Batch {
    pub ids: Tensor,
    pub mask: Tensor,
    pub type_ids: Tensor,
    /// Real length of each sequence.
    pub lengths: Vec<usize>,
}

impl TextTokenizer {
    /// Wraps a tokenizer, disabling its own padding and truncation.
    pub fn new(mut inner: Tokenizer, bos_id: Option<u32>, eos_id: Option<u32>) -> Self {
        inner.with_padding(None);
        // Removing truncation cannot fail.
        let _ = inner.with_truncation(None);
        let pad_id = ["[PAD]", "<pad>", "<|padding|>"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .or(eos_id)
            .unwrap_or(0);
        Self {
            inner,
            pad_id,
            bos_id,
            eos_id,
            add_bos: false,
            chat_template: None,
            chat_template_origin: None,
        }
    }

    /// Loads `tokenizer.json` from a model directory.
    ///
    /// The `tokenizers` library panics on some malformed files (while reading them, or at the
    /// first text); both become an error naming the file, checked here on a probe text.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bad = |e: String| Error::bad_file(path, format!("cannot load tokenizer: {e}"));
        let inner = contain(|| Tokenizer::from_file(path))
            .map_err(bad)?
            .map_err(|e| bad(e.to_string()))?;
        contain(|| {
            let _ = inner.encode_fast("a b", true);
            let _ = inner.encode("a b", false);
            let _ = inner.decode(&[0, 1], true);
        })
        .map_err(|e| bad(format!("it fails on a probe text: {e}")))?;
        let pad = inner.get_padding().map(|p| p.pad_id);
        let mut t = Self::new(inner, None, None);
        if let Some(p) = pad {
            t.pad_id = p;
        }
        Ok(t)
    }

    /// Reads the special-token facts of `tokenizer_config.json` (Hugging Face's layout):
    /// `bos_token`, `eos_token` (strings or `{"content": ...}`), `add_bos_token` and
    /// `chat_template`. A missing file changes nothing.
    pub fn apply_config(&mut self, path: &Path) -> Result<()> {
        if !path.exists() {
            return Ok(());
        }
        let raw: serde_json::Value = tuna_core::fsutil::read_json(path)?;
        let token = |key: &str| {
            let v = raw.get(key)?;
            let text = v.as_str().or_else(|| v.get("content")?.as_str())?;
            self.inner.token_to_id(text)
        };
        if let Some(id) = token("bos_token") {
            self.bos_id = Some(id);
        }
        if let Some(id) = token("eos_token") {
            self.eos_id = Some(id);
        }
        if let Some(id) = token("pad_token") {
            self.pad_id = id;
        }
        if let Some(b) = raw.get("add_bos_token").and_then(|v| v.as_bool()) {
            // A tokenizer.json post-processor may add it already; add it here only if not.
            self.add_bos = b && !self.encodes_bos()?;
        }
        if let Some(t) = raw.get("chat_template").and_then(|v| v.as_str()) {
            self.chat_template = Some(t.to_string());
            self.chat_template_origin = Some(format!("{} (`chat_template`)", path.display()));
        }
        Ok(())
    }

    /// Whether the tokenizer itself puts the BOS token first.
    fn encodes_bos(&self) -> Result<bool> {
        let Some(bos) = self.bos_id else {
            return Ok(false);
        };
        let enc = self
            .inner
            .encode("a", true)
            .map_err(|e| Error::Invalid(format!("cannot encode text: {e}")))?;
        Ok(enc.get_ids().first() == Some(&bos))
    }

    /// The wrapped tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of one text, with the model's special tokens, truncated to `max_len`.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        Ok(self.encode_cut(text, max_len)?.0)
    }

    /// [`Self::encode`], and whether the text was longer than `max_len` and cut.
    pub fn encode_cut(&self, text: &str, max_len: usize) -> Result<(Vec<u32>, bool)> {
        let enc = guarded(|| self.inner.encode_fast(text, true), "tokenize text")?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if self.add_bos {
            if let Some(b) = self.bos_id {
                ids.push(b);
            }
        }
        ids.extend_from_slice(enc.get_ids());
        let cut = ids.len() > max_len;
        if cut {
            truncate_keep_closing(&mut ids, max_len, &self.inner);
        }
        Ok((ids, cut))
    }

    /// Token ids of a text exactly as written, with no special tokens added.
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        let enc = guarded(|| self.inner.encode_fast(text, false), "tokenize text")?;
        Ok(enc.get_ids().to_vec())
    }

    /// Byte spans of the tokens of `text` as written (no special tokens, no truncation), in
    /// order; tokens that cover no text are left out.
    pub fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        let enc = guarded(|| self.inner.encode(text, false), "tokenize text")?;
        Ok(enc
            .get_offsets()
            .iter()
            .copied()
            .filter(|(a, b)| b > a)
            .collect())
    }

    /// Decodes ids back to text.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        guarded(|| self.inner.decode(ids, skip_special), "decode ids")
    }
}

/// A call into the `tokenizers` library, its errors and panics as errors ("cannot {what}").
fn guarded<T>(f: impl FnOnce() -> tokenizers::Result<T>, what: &str) -> Result<T> {
    match contain(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Invalid(format!("cannot {what}: {e}"))),
        Err(panic) => Err(Error::Invalid(format!(
            "cannot {what}: the tokenizer failed ({panic})"
        ))),
    }
}

/// Pads id sequences on the right into a [`Batch`].
pub fn pad_batch<S: AsRef<[u32]>>(seqs: &[S], pad_id: u32, device: &Device) -> Result<Batch> {
    let b = seqs.len();
    let t = seqs
        .iter()
        .map(|s| s.as_ref().len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b * t);
    for s in seqs {
        let s = s.as_ref();
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(pad_id, t - s.len()));
        mask.extend(std::iter::repeat_n(1u32, s.len()));
        mask.extend(std::iter::repeat_n(0u32, t - s.len()));
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        mask: Tensor::from_vec(mask, (b, t), device)?,
        type_ids: Tensor::zeros((b, t), candle_core::DType::U32, device)?,
        lengths: seqs.iter().map(|s| s.as_ref().len()).collect(),
    })
}

/// Truncates to `max_len`, keeping a closing special token (BERT's `[SEP]`) if there was one,
/// as truncation inside the tokenizer would.
fn truncate_keep_closing(ids: &mut Vec<u32>, max_len: usize, tok: &Tokenizer) {
    let Some(&last) = ids.last() else { return };
    let closing = tok
        .get_added_tokens_decoder()
        .get(&last)
        .is_some_and(|a| a.special);
    ids.truncate(max_len);
    if closing && max_len > 0 {
        ids[max_len - 1] = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_right_with_mask() {
        let b = pad_batch(&[vec![5, 6, 7], vec![8]], 0, &Device::Cpu).unwrap();
        assert_eq!(
            b.ids.to_vec2::<u32>().unwrap(),
            vec![vec![5, 6, 7], vec![8, 0, 0]]
        );
        assert_eq!(
            b.mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1], vec![1, 0, 0]]
        );
        assert_eq!(b.lengths, vec![3, 1]);
    }
}
