#!/usr/bin/env bash
# Vector store benchmark: build time and top-10 query latency (p50, p99) at CHUNKS chunks
# (default 100,000; 384 dims, as MiniLM) for the embedded store (SQLite + sqlite-vec) and for
# PostgreSQL + pgvector (started on loopback by scripts/postgres.sh), side by side. Both scan
# exactly. Data: seeded random unit vectors and ~600-character texts, 10 chunks per document,
# written 1,000 chunks per transaction. Prints one JSON line per store.
#
#   bash bench/index_store.sh            # CHUNKS=100000 QUERIES=200
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CHUNKS="${CHUNKS:-100000}"
QUERIES="${QUERIES:-200}"
cargo build --release -q -p tuna-rag --example store_bench
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
./target/release/examples/store_bench "$work/bench.db" "$CHUNKS" 384 "$QUERIES"
url="$(bash scripts/postgres.sh start)"
name="bench_$$"
./target/release/examples/store_bench "$url#$name" "$CHUNKS" 384 "$QUERIES"
psql "$url" -qc "DROP TABLE tuna_${name}_chunks, tuna_${name}_docs, tuna_${name}_meta" 2>/dev/null \
  || echo "(left tables tuna_${name}_* in $url)" >&2
