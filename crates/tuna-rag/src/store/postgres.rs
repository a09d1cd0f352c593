//! The shared store: PostgreSQL with pgvector. One database can hold several indexes, named by
//! the URL's fragment (`postgres://host/db#docs` uses tables `tuna_docs_*`; no fragment:
//! `tuna_default_*`). Chunks carry a `vector(dim)` column searched exactly by cosine distance
//! (`<=>`); chunks are written with COPY inside the document batch's transaction.

use super::{check_dims, vector_text, DocEntry, Hit, IndexMeta, Stats, Store};
use crate::error::{Error, Result};
use postgres::{Client, NoTls};
use std::collections::HashMap;
use std::io::Write;

/// An index in a PostgreSQL database.
pub struct PostgresStore {
    client: Client,
    /// Table name prefix, `tuna_<name>_`.
    prefix: String,
    /// Whether this connection holds the index's writer lock (a session advisory lock).
    writer: bool,
}

impl PostgresStore {
    /// Connects and creates the index's tables if needed (the `vector` extension must be
    /// installable in the database).
    pub fn open(spec: &str) -> Result<Self> {
        let (url, name) = match spec.split_once('#') {
            Some((u, n)) => (u, n),
            None => (spec, "default"),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Error::invalid(format!(
                "index name `{name}` (after #): use lower-case letters, digits and _"
            )));
        }
        let mut client = Client::connect(url, NoTls)?;
        let p = format!("tuna_{name}_");
        // `CREATE ... IF NOT EXISTS` races with itself in PostgreSQL (two sessions can both
        // find the name free): the schema is made under a transaction-level advisory lock.
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('tuna schema'))", &[])?;
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {p}meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS {p}docs (
                 id BIGSERIAL PRIMARY KEY,
                 source TEXT NOT NULL UNIQUE,
                 title TEXT,
                 hash TEXT NOT NULL,
                 n_chunks INTEGER NOT NULL,
                 added_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );"
        ))?;
        tx.commit()?;
        Ok(PostgresStore {
            client,
            prefix: p,
            writer: false,
        })
    }

    fn table(&self, t: &str) -> String {
        format!("{}{t}", self.prefix)
    }

    fn has_chunks(&mut self) -> Result<bool> {
        let t = self.table("chunks");
        let row = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&t])?;
        Ok(row.get(0))
    }
}

/// Escapes a value for COPY's text format.
fn copy_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn meta(&mut self) -> Result<Option<IndexMeta>> {
        let q = format!(
            "SELECT value FROM {} WHERE key = 'index'",
            self.table("meta")
        );
        match self.client.query_opt(&q, &[])? {
            Some(row) => serde_json::from_str(row.get::<_, &str>(0))
                .map(Some)
                .map_err(|e| Error::invalid(format!("index metadata: {e}"))),
            None => Ok(None),
        }
    }

    fn lock_writer(&mut self, waiting: &mut dyn FnMut()) -> Result<()> {
        if self.writer {
            return Ok(());
        }
        // A session-level advisory lock keyed by the index: released when the connection
        // closes, however the process ends.
        let key = format!("tuna index {}", self.prefix);
        let row = self
            .client
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])?;
        if !row.get::<_, bool>(0) {
            waiting();
            self.client
                .execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])?;
        }
        self.writer = true;
        Ok(())
    }

    fn init(&mut self, meta: &IndexMeta) -> Result<()> {
        let (m, d, c) = (self.table("meta"), self.table("docs"), self.table("chunks"));
        let json = serde_json::to_string(meta).expect("metadata serialises");
        let mut tx = self.client.transaction()?;
        tx.execute(
            &format!(
                "INSERT INTO {m} (key, value) VALUES ('index', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            &[&json],
        )?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {c} (
                 id BIGSERIAL PRIMARY KEY,
                 doc_id BIGINT NOT NULL REFERENCES {d}(id) ON DELETE CASCADE,
                 seq INTEGER NOT NULL,
                 text TEXT NOT NULL,
                 start_byte INTEGER NOT NULL,
                 end_byte INTEGER NOT NULL,
                 embedding vector({dim}) NOT NULL
             );
             CREATE INDEX IF NOT EXISTS {c}_doc ON {c}(doc_id);",
            dim = meta.dim
        ))?;
        tx.commit()?;
        Ok(())
    }

    fn hashes(&mut self) -> Result<HashMap<String, String>> {
        let q = format!("SELECT source, hash FROM {}", self.table("docs"));
        Ok(self
            .client
            .query(&q, &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn put(&mut self, docs: &[DocEntry]) -> Result<()> {
        let dim = self
            .meta()?
            .ok_or_else(|| Error::invalid("index has no metadata: call init first"))?
            .dim;
        check_dims(docs, dim)?;
        let (d, c) = (self.table("docs"), self.table("chunks"));
        let mut tx = self.client.transaction()?;
        let del = tx.prepare(&format!("DELETE FROM {d} WHERE source = $1"))?;
        let ins = tx.prepare(&format!(
            "INSERT INTO {d} (source, title, hash, n_chunks) VALUES ($1, $2, $3, $4) RETURNING id"
        ))?;
        let mut rows = String::new();
        for doc in docs {
            tx.execute(&del, &[&doc.source])?;
            let id: i64 = tx
                .query_one(
                    &ins,
                    &[
                        &doc.source,
                        &doc.title,
                        &doc.hash,
                        &(doc.chunks.len() as i32),
                    ],
                )?
                .get(0);
            for ch in &doc.chunks {
                rows.push_str(&format!(
                    "{id}\t{}\t{}\t{}\t{}\t{}\n",
                    ch.seq,
                    copy_escape(&ch.text),
                    ch.start,
                    ch.end,
                    vector_text(&ch.vector)
                ));
            }
        }
        if !rows.is_empty() {
            let mut w = tx.copy_in(&format!(
                "COPY {c} (doc_id, seq, text, start_byte, end_byte, embedding) FROM STDIN"
            ))?;
            w.write_all(rows.as_bytes())
                .map_err(|e| Error::invalid(format!("postgres COPY: {e}")))?;
            w.finish()?;
        }
        tx.commit()?;
        Ok(())
    }

    fn delete(&mut self, sources: &[String]) -> Result<usize> {
        let d = self.table("docs");
        let mut tx = self.client.transaction()?;
        let mut n = 0;
        for s in sources {
            n += tx.execute(&format!("DELETE FROM {d} WHERE source = $1"), &[s])? as usize;
        }
        tx.commit()?;
        Ok(n)
    }

    fn search(&mut self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        let Some(meta) = self.meta()? else {
            return Ok(vec![]);
        };
        if query.len() != meta.dim {
            return Err(Error::invalid(format!(
                "query vector of length {} in an index of dimension {}",
                query.len(),
                meta.dim
            )));
        }
        let (d, c) = (self.table("docs"), self.table("chunks"));
        let q = format!(
            "SELECT d.source, d.title, c.seq, c.text, (c.embedding <=> $1::text::vector) AS dist \
             FROM {c} c JOIN {d} d ON d.id = c.doc_id \
             ORDER BY c.embedding <=> $1::text::vector, c.id LIMIT $2"
        );
        let rows = self.client.query(&q, &[&vector_text(query), &(k as i64)])?;
        Ok(rows
            .iter()
            .map(|r| Hit {
                source: r.get(0),
                title: r.get(1),
                seq: r.get::<_, i32>(2) as usize,
                text: r.get(3),
                score: 1.0 - r.get::<_, f64>(4) as f32,
            })
            .collect())
    }

    fn stats(&mut self) -> Result<Stats> {
        let d = self.table("docs");
        let documents: i64 = self
            .client
            .query_one(&format!("SELECT count(*) FROM {d}"), &[])?
            .get(0);
        let (mut chunks, mut incomplete, mut bytes) = (0i64, 0i64, None);
        if self.has_chunks()? {
            let c = self.table("chunks");
            chunks = self
                .client
                .query_one(&format!("SELECT count(*) FROM {c}"), &[])?
                .get(0);
            incomplete = self
                .client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {d} d WHERE d.n_chunks != \
                         (SELECT count(*) FROM {c} c WHERE c.doc_id = d.id)"
                    ),
                    &[],
                )?
                .get(0);
            let size: i64 = self
                .client
                .query_one(
                    "SELECT pg_total_relation_size($1::text::regclass) \
                     + pg_total_relation_size($2::text::regclass)",
                    &[&c, &d],
                )?
                .get(0);
            bytes = Some(size as u64);
        }
        Ok(Stats {
            store: "postgres",
            documents: documents as usize,
            chunks: chunks as usize,
            vectors: chunks as usize,
            incomplete_documents: incomplete as usize,
            bytes,
        })
    }
}
