//! Seeded edits of a valid input: byte-level for binary formats, plus line and token edits for
//! text and value replacements for JSON.

use arbitrary::{Result, Unstructured};
use serde_json::Value;

/// Which edits suit a format.
#[derive(Clone, Copy, Debug)]
pub enum Style {
    /// Byte edits, weighted towards the first `header` bytes (where the lengths, counts and
    /// offsets of a binary format live).
    Binary { header: usize },
    /// Byte, line and token edits; tokens come from the dictionary.
    Text,
    /// Text edits, or a value of the parsed JSON replaced, removed or added.
    Json,
}

/// Mutates seed inputs: 1 to 4 edits per case (one in half the cases), each drawn from `arbitrary`'s choices.
#[derive(Clone, Debug)]
pub struct Mutator {
    pub style: Style,
    /// Fragments worth inserting: syntax and values of the format.
    pub dictionary: &'static [&'static str],
}

/// Integers at the edges: zero, one, sign and width boundaries, sizes no file could back.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    7,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
];

/// JSON values that break assumptions: wrong types, signs, sizes, emptiness.
const JSON_VALUES: [&str; 18] = [
    "0",
    "-1",
    "1",
    "7",
    "3.5",
    "2147483648",
    "9007199254740993",
    "1e308",
    "-1e308",
    "1e-320",
    "\"\"",
    "\"x\"",
    "null",
    "true",
    "[]",
    "{}",
    "[0, 1]",
    "{\"a\": [null]}",
];

impl Mutator {
    pub fn new(style: Style, dictionary: &'static [&'static str]) -> Self {
        Self { style, dictionary }
    }

    /// A mutant of `seed`; the choices come from `u` (so a case is a function of its seed).
    pub fn mutate(&self, seed: &[u8], u: &mut Unstructured) -> Vec<u8> {
        let mut data = seed.to_vec();
        // Mostly one edit, so that mutants stay close enough to valid to reach deep checks.
        let edits = match u.ratio(1, 2) {
            Ok(true) => 1,
            _ => u.int_in_range(2..=4u8).unwrap_or(2),
        };
        for _ in 0..edits {
            // An exhausted `Unstructured` gives zeros; the edit is then a no-op or a flip.
            let _ = self.edit(&mut data, u);
        }
        data
    }

    fn edit(&self, data: &mut Vec<u8>, u: &mut Unstructured) -> Result<()> {
        match self.style {
            Style::Binary { header } => byte_edit(data, u, header),
            Style::Text => match u.int_in_range(0..=3u8)? {
                0 => byte_edit(data, u, data.len()),
                1 => line_edit(data, u),
                _ => self.token_edit(data, u),
            },
            Style::Json => match u.int_in_range(0..=4u8)? {
                0 => byte_edit(data, u, data.len()),
                1 => self.token_edit(data, u),
                _ => json_edit(data, u),
            },
        }
    }

    /// Inserts a dictionary fragment, or replaces a run of digits with an interesting number.
    fn token_edit(&self, data: &mut Vec<u8>, u: &mut Unstructured) -> Result<()> {
        let at = position(data.len() + 1, u, usize::MAX)?;
        if u.ratio(1, 3)? {
            let start = data[..at.min(data.len())]
                .iter()
                .rposition(|b| !b.is_ascii_digit())
                .map_or(0, |p| p + 1);
            let end = data[start..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(data.len(), |p| start + p);
            let n = *u.choose(&INTERESTING)?;
            let text = if u.ratio(1, 4)? {
                format!("-{n}")
            } else {
                n.to_string()
            };
            data.splice(start..end, text.bytes());
        } else if !self.dictionary.is_empty() {
            let token = *u.choose(self.dictionary)?;
            data.splice(at..at, token.bytes());
        }
        Ok(())
    }
}

/// A random position below `len`, half the time within the first `header` bytes.
fn position(len: usize, u: &mut Unstructured, header: usize) -> Result<usize> {
    if len == 0 {
        return Ok(0);
    }
    let within = if u.ratio(1, 2)? {
        header.clamp(1, len)
    } else {
        len
    };
    u.choose_index(within)
}

fn byte_edit(data: &mut Vec<u8>, u: &mut Unstructured, header: usize) -> Result<()> {
    if data.is_empty() {
        let n = u.int_in_range(1..=16usize)?;
        data.extend_from_slice(u.bytes(n)?);
        return Ok(());
    }
    let at = position(data.len(), u, header)?;
    match u.int_in_range(0..=8u8)? {
        0 => data[at] ^= 1 << u.int_in_range(0..=7u8)?,
        1 => data[at] = *u.choose(&[0u8, 1, 0x7f, 0x80, 0xff, b'"', b'\n', b'{'])?,
        2 => data[at] = u.arbitrary()?,
        3 | 4 => {
            let width = if u.ratio(1, 2)? { 4 } else { 8 };
            let v = u.choose(&INTERESTING)?.to_le_bytes();
            let end = (at + width).min(data.len());
            data[at..end].copy_from_slice(&v[..end - at]);
        }
        5 => data.truncate(at),
        6 => {
            let n = u.int_in_range(1..=64usize)?.min(data.len() - at);
            data.drain(at..at + n);
        }
        7 => {
            let n = u.int_in_range(1..=32usize)?;
            let bytes = u.bytes(n)?.to_vec();
            data.splice(at..at, bytes);
        }
        _ => {
            let n = u.int_in_range(1..=256usize)?.min(data.len() - at);
            let chunk = data[at..at + n].to_vec();
            let to = u.choose_index(data.len())?;
            data.splice(to..to, chunk);
        }
    }
    Ok(())
}

/// Deletes, duplicates or swaps whole lines.
fn line_edit(data: &mut Vec<u8>, u: &mut Unstructured) -> Result<()> {
    let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let i = u.choose_index(lines.len())?;
    let j = u.choose_index(lines.len())?;
    match u.int_in_range(0..=2u8)? {
        0 => {
            lines.remove(i);
        }
        1 => {
            let copy = lines[i].clone();
            lines.insert(j, copy);
        }
        _ => lines.swap(i, j),
    }
    *data = lines.join(&b'\n');
    Ok(())
}

/// Replaces, removes or adds one value somewhere in the parsed JSON; byte edits when the input
/// no longer parses.
fn json_edit(data: &mut Vec<u8>, u: &mut Unstructured) -> Result<()> {
    let Ok(mut root) = serde_json::from_slice::<Value>(data) else {
        return byte_edit(data, u, data.len());
    };
    // Choose a random path down the tree (read-only), then follow it to edit.
    let mut path = Vec::new();
    let mut at = &root;
    while u.ratio(2, 3)? {
        let len = match at {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len == 0 {
            break;
        }
        let i = u.choose_index(len)?;
        path.push(i);
        at = child(at, i);
    }
    let mut node = &mut root;
    for &i in &path {
        node = match node {
            Value::Object(m) => m.values_mut().nth(i).expect("index below len"),
            Value::Array(a) => &mut a[i],
            _ => unreachable!("the path only enters objects and arrays"),
        };
    }
    let value: Value = serde_json::from_str(u.choose(&JSON_VALUES)?).expect("valid JSON");
    match node {
        Value::Object(m) if !m.is_empty() && u.ratio(1, 3)? => {
            let k = m.keys().nth(u.choose_index(m.len())?).cloned();
            if let Some(k) = k {
                m.remove(&k);
            }
        }
        Value::Object(m) if u.ratio(1, 2)? => {
            let k = m.keys().nth(u.choose_index(m.len().max(1))?).cloned();
            m.insert(k.unwrap_or_else(|| "x".into()), value);
        }
        Value::Array(a) if u.ratio(1, 3)? => a.push(value),
        _ => *node = value,
    }
    *data = serde_json::to_vec(&root).expect("JSON values serialise");
    Ok(())
}

/// The `i`-th value of an object or array.
fn child(v: &Value, i: usize) -> &Value {
    match v {
        Value::Object(m) => m.values().nth(i).expect("index below len"),
        Value::Array(a) => &a[i],
        _ => unreachable!("only objects and arrays have children"),
    }
}
