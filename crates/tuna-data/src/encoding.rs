//! Text encodings of data files: UTF-8 (the default), Latin-1, Windows-1252 and the other
//! encodings of the WHATWG Encoding Standard by label (through `encoding_rs`), and the one
//! function that turns a file's bytes into text, dropping a byte-order mark.

use crate::DataError;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// How the bytes of a data file are read as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8; invalid bytes are an error naming the line (and suggesting an encoding).
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is the character of the same number (never an error).
    Latin1,
    /// Windows-1252 (Western European Windows, a superset of Latin-1's printable characters:
    /// bytes 0x80-0x9F are `€`, curly quotes, dashes, ...).
    Windows1252,
    /// Another encoding of the WHATWG Encoding Standard (`shift_jis`, `iso-8859-15`, `utf-16le`).
    Other(&'static encoding_rs::Encoding),
}

impl FromStr for Encoding {
    type Err = DataError;

    /// `utf-8`, `latin-1` (`iso-8859-1`, `latin1`), `windows-1252` (`cp1252`), or any WHATWG
    /// label, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.trim().to_ascii_lowercase();
        match l.as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            // WHATWG maps these labels to windows-1252; here they mean ISO-8859-1 exactly.
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => Ok(Encoding::Latin1),
            "windows-1252" | "cp1252" | "win-1252" => Ok(Encoding::Windows1252),
            _ => encoding_rs::Encoding::for_label(l.as_bytes())
                .map(Encoding::Other)
                .ok_or_else(|| {
                    DataError::Invalid(format!(
                        "unknown encoding \"{s}\"; use utf-8, latin-1, windows-1252 or another \
                         WHATWG encoding label (e.g. iso-8859-15, shift_jis, utf-16le)"
                    ))
                }),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::Utf8 => f.write_str("utf-8"),
            Encoding::Latin1 => f.write_str("latin-1"),
            Encoding::Windows1252 => f.write_str("windows-1252"),
            Encoding::Other(e) => f.write_str(&e.name().to_ascii_lowercase()),
        }
    }
}

/// Reads `path` as text in `encoding`, dropping a leading BOM; invalid UTF-8 is reported with
/// its line and the way forward.
pub(crate) fn read_text_file(path: &Path, encoding: Encoding) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode(path, bytes, encoding)
}

/// The text of a file's `bytes` in `encoding`, without a leading byte-order mark. Invalid
/// UTF-8 is an error naming the line and the byte, with the way forward.
pub fn decode(path: &Path, bytes: Vec<u8>, encoding: Encoding) -> Result<String, DataError> {
    let mut text = match encoding {
        Encoding::Utf8 => String::from_utf8(bytes).map_err(|e| {
            let bad = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = 1 + bytes[..bad].iter().filter(|&&b| b == b'\n').count();
            DataError::line(
                path,
                line,
                format!(
                    "not valid UTF-8 (byte 0x{:02X}); if the file is Latin-1 or Windows-1252 \
                     (common for Western European text from Windows), read it with \
                     `--encoding windows-1252` or `--encoding latin-1`, or save it as UTF-8",
                    bytes[bad]
                ),
            )
        })?,
        Encoding::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        Encoding::Windows1252 => whatwg(path, &bytes, encoding_rs::WINDOWS_1252)?,
        Encoding::Other(e) => whatwg(path, &bytes, e)?,
    };
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Decodes with `encoding_rs` (a BOM of the encoding is removed), refusing malformed input.
fn whatwg(
    path: &Path,
    bytes: &[u8],
    enc: &'static encoding_rs::Encoding,
) -> Result<String, DataError> {
    let bytes = match (enc, bytes) {
        (e, [0xEF, 0xBB, 0xBF, rest @ ..]) if e == encoding_rs::UTF_8 => rest,
        (e, [0xFF, 0xFE, rest @ ..]) if e == encoding_rs::UTF_16LE => rest,
        (e, [0xFE, 0xFF, rest @ ..]) if e == encoding_rs::UTF_16BE => rest,
        _ => bytes,
    };
    enc.decode_without_bom_handling_and_without_replacement(bytes)
        .map(|t| t.into_owned())
        .ok_or_else(|| {
            DataError::file(
                path,
                format!(
                    "not valid {}; check the file's encoding",
                    enc.name().to_ascii_lowercase()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for (s, e) in [
            ("UTF-8", Encoding::Utf8),
            ("latin1", Encoding::Latin1),
            ("ISO-8859-1", Encoding::Latin1),
            ("cp1252", Encoding::Windows1252),
        ] {
            assert_eq!(s.parse::<Encoding>().unwrap(), e, "{s}");
        }
        assert_eq!(
            "iso-8859-15".parse::<Encoding>().unwrap().to_string(),
            "iso-8859-15"
        );
        let e = "klingon".parse::<Encoding>().unwrap_err().to_string();
        assert!(e.contains("windows-1252"), "{e}");
    }

    #[test]
    fn latin1_and_windows_1252_differ_only_in_0x80_to_0x9f() {
        let p = Path::new("a.txt");
        let bytes = b"caf\xe9 \x93quoted\x94 \x80".to_vec();
        assert_eq!(
            decode(p, bytes.clone(), Encoding::Windows1252).unwrap(),
            "caf\u{e9} \u{201c}quoted\u{201d} \u{20ac}"
        );
        assert_eq!(
            decode(p, bytes, Encoding::Latin1).unwrap(),
            "caf\u{e9} \u{93}quoted\u{94} \u{80}"
        );
        let e = decode(p, b"ok\ncaf\xe9".to_vec(), Encoding::Utf8)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.txt line 2: not valid UTF-8 (byte 0xE9)")
                && e.contains("--encoding windows-1252"),
            "{e}"
        );
    }
}
