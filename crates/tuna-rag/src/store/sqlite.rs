//! The embedded store: one SQLite file (WAL journal) with the sqlite-vec extension. Chunks and
//! documents are plain tables; vectors live in a `vec0` table keyed by the chunk's rowid and
//! searched exactly by cosine distance. Writers take an advisory lock on `INDEX.lock` beside
//! the file (released by the system when the process ends, however it ends).

use super::{check_dims, vector_bytes, DocEntry, Hit, IndexMeta, Stats, Store};
use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// An index in a SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// The locked `INDEX.lock` file while this store is the index's writer.
    writer: Option<std::fs::File>,
}

/// Makes sqlite-vec available to every connection opened after it.
fn register_vec() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        type Init = unsafe extern "C" fn(
            *mut rusqlite::ffi::sqlite3,
            *mut *mut std::os::raw::c_char,
            *const rusqlite::ffi::sqlite3_api_routines,
        ) -> std::os::raw::c_int;
        // SAFETY: sqlite3_vec_init is the extension's entry point, with the signature SQLite
        // expects of an auto-extension.
        unsafe {
            let init: Init = std::mem::transmute(sqlite_vec::sqlite3_vec_init as *const ());
            rusqlite::ffi::sqlite3_auto_extension(Some(init));
        }
    });
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    title TEXT,
    hash TEXT NOT NULL,
    n_chunks INTEGER NOT NULL,
    added_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES docs(id),
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    start_byte INTEGER NOT NULL,
    end_byte INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
";

impl SqliteStore {
    /// Opens or creates the index file.
    pub fn open(path: &Path) -> Result<Self> {
        register_vec();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // WAL: readers never block the writer, and a killed writer leaves the last committed
        // state. NORMAL sync is durable against a crash of the process.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Searches scan every vector: read them through a memory map and keep pages cached.
        conn.pragma_update(None, "mmap_size", 1i64 << 32)?;
        conn.pragma_update(None, "cache_size", -(1i64 << 18))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            writer: None,
        })
    }

    fn dim(&self) -> Result<Option<usize>> {
        let meta: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match meta {
            Some(m) => Some(parse_meta(&m)?.dim),
            None => None,
        })
    }
}

fn parse_meta(json: &str) -> Result<IndexMeta> {
    serde_json::from_str(json).map_err(|e| Error::invalid(format!("index metadata: {e}")))
}

fn count(conn: &Connection, sql: &str) -> Result<usize> {
    Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as usize)
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn meta(&mut self) -> Result<Option<IndexMeta>> {
        let meta: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'index'", [], |r| {
                r.get(0)
            })
            .optional()?;
        meta.as_deref().map(parse_meta).transpose()
    }

    fn init(&mut self, meta: &IndexMeta) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('index', ?1)",
            params![serde_json::to_string(meta).expect("metadata serialises")],
        )?;
        tx.execute_batch(&format!(
            "CREATE VIRTUAL TABLE IF NOT EXISTS vectors USING vec0(\
             embedding float[{}] distance_metric=cosine)",
            meta.dim
        ))?;
        tx.commit()?;
        Ok(())
    }

    fn lock_writer(&mut self, waiting: &mut dyn FnMut()) -> Result<()> {
        use fs4::fs_std::FileExt;
        if self.writer.is_some() {
            return Ok(());
        }
        // A file of its own: SQLite's POSIX locks on the index would be dropped if another
        // descriptor of the index file were opened and closed in this process.
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        let lock_path = PathBuf::from(p);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        if !file
            .try_lock_exclusive()
            .map_err(|e| Error::io(&lock_path, e))?
        {
            waiting();
            file.lock_exclusive()
                .map_err(|e| Error::io(&lock_path, e))?;
        }
        self.writer = Some(file);
        Ok(())
    }

    fn hashes(&mut self) -> Result<HashMap<String, String>> {
        let mut st = self.conn.prepare("SELECT source, hash FROM docs")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put(&mut self, docs: &[DocEntry]) -> Result<()> {
        let dim = self
            .dim()?
            .ok_or_else(|| Error::invalid("index has no metadata: call init first"))?;
        check_dims(docs, dim)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut find = tx.prepare_cached("SELECT id FROM docs WHERE source = ?1")?;
            let mut ins_doc = tx.prepare_cached(
                "INSERT INTO docs (source, title, hash, n_chunks) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut ins_chunk = tx.prepare_cached(
                "INSERT INTO chunks (doc_id, seq, text, start_byte, end_byte) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut ins_vec =
                tx.prepare_cached("INSERT INTO vectors (rowid, embedding) VALUES (?1, ?2)")?;
            for d in docs {
                let old: Option<i64> = find.query_row([&d.source], |r| r.get(0)).optional()?;
                if let Some(id) = old {
                    remove_doc(&tx, id)?;
                }
                ins_doc.execute(params![d.source, d.title, d.hash, d.chunks.len() as i64])?;
                let doc_id = tx.last_insert_rowid();
                for c in &d.chunks {
                    ins_chunk.execute(params![
                        doc_id,
                        c.seq as i64,
                        c.text,
                        c.start as i64,
                        c.end as i64
                    ])?;
                    let chunk_id = tx.last_insert_rowid();
                    ins_vec.execute(params![chunk_id, vector_bytes(&c.vector)])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete(&mut self, sources: &[String]) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut n = 0;
        {
            let mut find = tx.prepare_cached("SELECT id FROM docs WHERE source = ?1")?;
            for s in sources {
                let id: Option<i64> = find.query_row([s], |r| r.get(0)).optional()?;
                if let Some(id) = id {
                    remove_doc(&tx, id)?;
                    n += 1;
                }
            }
        }
        tx.commit()?;
        Ok(n)
    }

    fn search(&mut self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        let Some(dim) = self.dim()? else {
            return Ok(vec![]);
        };
        if query.len() != dim {
            return Err(Error::invalid(format!(
                "query vector of length {} in an index of dimension {dim}",
                query.len()
            )));
        }
        if k == 0 {
            return Ok(vec![]);
        }
        let mut st = self.conn.prepare_cached(
            "WITH knn AS (SELECT rowid, distance FROM vectors \
                          WHERE embedding MATCH ?1 AND k = ?2) \
             SELECT d.source, d.title, c.seq, c.text, knn.distance \
             FROM knn JOIN chunks c ON c.id = knn.rowid JOIN docs d ON d.id = c.doc_id \
             ORDER BY knn.distance, c.id",
        )?;
        let rows = st.query_map(params![vector_bytes(query), k as i64], |r| {
            Ok(Hit {
                source: r.get(0)?,
                title: r.get(1)?,
                seq: r.get::<_, i64>(2)? as usize,
                text: r.get(3)?,
                score: 1.0 - r.get::<_, f64>(4)? as f32,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stats(&mut self) -> Result<Stats> {
        let vectors = if has_vectors(&self.conn)? {
            count(&self.conn, "SELECT count(*) FROM vectors")?
        } else {
            0
        };
        let bytes = ["", "-wal"]
            .iter()
            .filter_map(|s| {
                let mut p = self.path.clone().into_os_string();
                p.push(s);
                std::fs::metadata(p).ok().map(|m| m.len())
            })
            .sum();
        Ok(Stats {
            store: "sqlite",
            documents: count(&self.conn, "SELECT count(*) FROM docs")?,
            chunks: count(&self.conn, "SELECT count(*) FROM chunks")?,
            vectors,
            incomplete_documents: count(
                &self.conn,
                "SELECT count(*) FROM docs d WHERE d.n_chunks != \
                 (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)",
            )?,
            bytes: Some(bytes),
        })
    }
}

/// Deletes a document with its chunks and their vectors (inside the caller's transaction).
fn remove_doc(conn: &Connection, id: i64) -> Result<()> {
    if has_vectors(conn)? {
        conn.prepare_cached(
            "DELETE FROM vectors WHERE rowid IN (SELECT id FROM chunks WHERE doc_id = ?1)",
        )?
        .execute([id])?;
    }
    conn.prepare_cached("DELETE FROM chunks WHERE doc_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM docs WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Whether the vector table exists yet (it is made by `init`).
fn has_vectors(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE name = 'vectors'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
