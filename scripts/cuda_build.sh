#!/usr/bin/env bash
# Builds the workspace with `--features cuda` where there is no GPU (as in CI): installs the
# CUDA 13.0 compiler, headers and libraries from PyPI outside the repository
# (scripts/cuda_toolkit.sh), builds for compute capability $CUDA_COMPUTE_CAP (default 90, the
# H100/H200; no GPU is there to detect one) into target/cuda so the CPU build is left alone,
# and checks that the GPU build, run where the driver is missing, stops with the no-driver
# message. Called by scripts/test.sh; TUNA_CUDA_BUILD=0 skips it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
eval "$(bash scripts/cuda_toolkit.sh)"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-${CARGO_BUILD_JOBS:-2}}"
echo "cuda build: toolkit ready after $((SECONDS - start)) s (compute capability $CUDA_COMPUTE_CAP)"
# Start from the CPU build's artifacts: the dependencies the feature does not change are reused.
if [ -d target/release ] && [ ! -d target/cuda/release ]; then
  mkdir -p target/cuda
  cp -a target/release target/cuda/release
fi
cargo build --release --workspace --features tuna/cuda --target-dir target/cuda
# The stub driver answers as a machine without the driver's kernel module would.
err="$(LD_LIBRARY_PATH="$TUNA_CUDA_STUB:$TUNA_CUDA_LIBS" target/cuda/release/tuna info \
  --model none --device cuda 2>&1 >/dev/null || true)"
case "$err" in
  *"no usable NVIDIA driver was found (CUDA_ERROR_STUB_LIBRARY)"*) echo "cuda build: $err" ;;
  *) echo "cuda build: expected the no-driver message, got: $err" >&2; exit 1 ;;
esac
echo "cuda build: done in $((SECONDS - start)) s"
