//! Build time and query latency of a store at N chunks.
//!
//! `store_bench INDEX [CHUNKS] [DIM] [QUERIES]`: writes CHUNKS chunks (10 per document, about
//! 600 characters of text each, seeded random unit vectors of DIM) to a new index INDEX in
//! batches of 1,000 chunks (one transaction each, as `tuna index add` does), then times
//! QUERIES top-10 searches with random unit query vectors. Prints one JSON line.

use std::time::Instant;
use tuna_rag::store::{DocEntry, IndexMeta, NewChunk};
use tuna_rag::ChunkConfig;

/// xorshift64*: seeded, fast, good enough for benchmark data.
struct Rand(u64);

impl Rand {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    /// Roughly normal (sum of uniforms).
    fn normal(&mut self) -> f32 {
        (0..4)
            .map(|_| (self.next() >> 11) as f32 / (1u64 << 53) as f32)
            .sum::<f32>()
            - 2.0
    }

    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }
}

const WORDS: [&str; 16] = [
    "index",
    "vector",
    "chunk",
    "query",
    "store",
    "model",
    "token",
    "answer",
    "source",
    "document",
    "search",
    "latency",
    "recall",
    "table",
    "server",
    "embedding",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let spec = args
        .get(1)
        .ok_or("usage: store_bench INDEX [CHUNKS] [DIM] [QUERIES]")?;
    let n: usize = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    let dim: usize = args.get(3).map_or(Ok(384), |s| s.parse())?;
    let queries: usize = args.get(4).map_or(Ok(200), |s| s.parse())?;
    let mut store = tuna_rag::open(spec)?;
    if store.meta()?.is_some() {
        return Err(format!("{spec} is not empty: give a new index").into());
    }
    let mut rng = Rand(0x9E3779B97F4A7C15);
    store.init(&IndexMeta {
        model: "random".into(),
        fingerprint: "bench".into(),
        probe: vec![],
        dim,
        pooling: "mean".into(),
        chunking: ChunkConfig {
            size: 200,
            overlap: 40,
        },
    })?;
    let per_doc = 10;
    let t0 = Instant::now();
    let mut batch = Vec::new();
    let mut written = 0;
    for d in 0..n.div_ceil(per_doc) {
        let chunks = (0..per_doc.min(n - d * per_doc))
            .map(|seq| {
                let text: String = (0..80)
                    .map(|_| WORDS[(rng.next() % 16) as usize])
                    .collect::<Vec<_>>()
                    .join(" ");
                NewChunk {
                    seq,
                    start: 0,
                    end: text.len(),
                    text,
                    vector: rng.unit(dim),
                }
            })
            .collect::<Vec<_>>();
        written += chunks.len();
        batch.push(DocEntry {
            source: format!("bench/doc{d}.txt"),
            title: None,
            hash: format!("{d}"),
            chunks,
        });
        if batch.len() * per_doc >= 1000 || written == n {
            store.put(&batch)?;
            batch.clear();
        }
    }
    let build = t0.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(queries);
    for _ in 0..queries {
        let q = rng.unit(dim);
        let t = Instant::now();
        let hits = store.search(&q, 10)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(hits.len(), 10);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    let stats = store.stats()?;
    println!(
        "{}",
        serde_json::json!({
            "store": store.kind(), "chunks": stats.chunks, "dim": dim,
            "build_seconds": build, "chunks_per_second": n as f64 / build,
            "queries": queries, "query_ms_p50": pct(0.5), "query_ms_p99": pct(0.99),
            "query_ms_mean": lat.iter().sum::<f64>() / lat.len() as f64,
            "bytes": stats.bytes,
        })
    );
    Ok(())
}
