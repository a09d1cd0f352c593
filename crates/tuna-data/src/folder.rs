//! A corpus stored as one folder per class with one file per text (scikit-learn's
//! `load_files` layout, e.g. `bbc/business/001.txt`): the folder names are the labels.
//!
//! Subfolders are read in name order and their files in name order; names starting with `.`
//! are left out, as are files directly in the top folder (with a note in the layout) and
//! deeper folders. Every file is read in the given encoding and trimmed; an empty one is a bad
//! row named by its path.

use crate::encoding::read_text_file;
use crate::example::{collect_rows, Example, Rows};
use crate::{DataError, Format, ReadOptions};
use std::path::{Path, PathBuf};

/// The entries of `dir` that are not hidden, in name order.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Reads a folder of class folders (see the module docs): its examples and skipped files, and
/// a note of what was read.
pub(crate) fn read_folder(dir: &Path, opts: &ReadOptions) -> Result<(Rows, String), DataError> {
    if opts.format != Format::Auto || !opts.text_columns.is_empty() || opts.label_column.is_some() {
        return Err(DataError::file(
            dir,
            "a folder is read as one subfolder per class with one text file each; formats and \
             columns apply to files only",
        ));
    }
    let all = entries(dir)?;
    let (classes, loose): (Vec<PathBuf>, Vec<PathBuf>) = all.into_iter().partition(|p| p.is_dir());
    let loose = loose.iter().filter(|p| p.is_file()).count();
    let mut rows = Vec::new();
    let mut n_classes = 0;
    for class in &classes {
        let label = class
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let files: Vec<PathBuf> = entries(class)?
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        n_classes += usize::from(!files.is_empty());
        for f in files {
            rows.push(read_file(&f, &label, opts));
        }
    }
    let (examples, skipped) = collect_rows(dir, rows, opts.skip_bad_rows)?;
    if examples.is_empty() {
        return Err(DataError::file(
            dir,
            "no texts: expected one subfolder per class, each with one text file per example \
             (e.g. DIR/sport/001.txt)",
        ));
    }
    let mut layout = format!(
        "a folder of {n_classes} class folders (the labels), {} text files",
        examples.len() + skipped.len()
    );
    if loose > 0 {
        layout.push_str(&format!(
            "; {loose} files directly in the folder were left out"
        ));
    }
    Ok(((examples, skipped), layout))
}

/// One file as one example labelled `label`.
fn read_file(path: &Path, label: &str, opts: &ReadOptions) -> Result<Example, DataError> {
    let text = read_text_file(path, opts.encoding)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(DataError::file(path, "empty text"));
    }
    Ok(Example {
        text: text.to_string(),
        label: Some(label.to_string()),
        line: 1,
        file: Some(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use crate::{read_dataset, Encoding, LabelMap, ReadOptions};

    fn corpus() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &[u8]| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("sport/002.txt", b"Second match report.\n");
        put("sport/001.txt", b"The team won the cup.");
        put("tech/001.txt", b"A new phone was shown.");
        put("tech/.hidden", b"not a text");
        put("README", b"about the corpus");
        dir
    }

    #[test]
    fn reads_one_folder_per_class_in_name_order() {
        let dir = corpus();
        let ds = read_dataset(dir.path(), &ReadOptions::default()).unwrap();
        assert_eq!(
            ds.texts(),
            [
                "The team won the cup.",
                "Second match report.",
                "A new phone was shown."
            ]
        );
        let labels: Vec<_> = ds
            .examples
            .iter()
            .map(|e| e.label.clone().unwrap())
            .collect();
        assert_eq!(labels, ["sport", "sport", "tech"]);
        assert!(ds.examples[0]
            .file
            .as_ref()
            .unwrap()
            .ends_with("sport/001.txt"));
        assert_eq!(
            LabelMap::from_dataset(&ds).unwrap().labels(),
            ["sport", "tech"]
        );
        assert_eq!(
            ds.layout,
            "a folder of 2 class folders (the labels), 3 text files; 1 files directly in the \
             folder were left out"
        );
    }

    #[test]
    fn empty_files_are_bad_rows_named_by_path_and_encodings_apply() {
        let dir = corpus();
        std::fs::write(dir.path().join("tech/002.txt"), b"  \n").unwrap();
        let e = read_dataset(dir.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 row cannot be read") && e.contains("tech/002.txt: empty text"),
            "{e}"
        );
        let skip = ReadOptions {
            skip_bad_rows: true,
            ..Default::default()
        };
        let ds = read_dataset(dir.path(), &skip).unwrap();
        assert_eq!((ds.len(), ds.skipped.len()), (3, 1));
        std::fs::write(dir.path().join("tech/002.txt"), b"caf\xe9").unwrap();
        assert!(read_dataset(dir.path(), &ReadOptions::default()).is_err());
        let latin = ReadOptions {
            encoding: Encoding::Latin1,
            ..Default::default()
        };
        let ds = read_dataset(dir.path(), &latin).unwrap();
        assert_eq!(ds.examples[3].text, "caf\u{e9}");
    }
}
