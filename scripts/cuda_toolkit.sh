#!/usr/bin/env bash
# Installs the parts of the CUDA 13.0 toolkit that a `--features cuda` build needs (nvcc and its
# front ends, the runtime and CCCL headers, and the libraries the binary links: cudart, cuBLAS, cuRAND,
# NVRTC) from PyPI's NVIDIA wheels into a folder outside the repository, and prints the shell
# exports that point the build at it. No GPU and no driver are needed. 13.0 matches the oldest
# driver that runs CUDA 13 (580): a newer nvcc writes PTX that driver cannot load.
#
#   eval "$(bash scripts/cuda_toolkit.sh [DIR])"    # DIR: $TUNA_CUDA_HOME or ~/.cache/tuna-cuda
set -euo pipefail
home="${1:-${TUNA_CUDA_HOME:-$HOME/.cache/tuna-cuda}}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.0.19 nvidia-curand==10.4.0.35
)
root="$home/py/nvidia/cu13"
stamp="$home/installed.txt"
if [ "$(cat "$stamp" 2>/dev/null)" != "${wheels[*]}" ]; then
  rm -rf "$home/py" "$home/link"
  mkdir -p "$home"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --no-compile \
    --target "$home/py" "${wheels[@]}" >&2
  # The wheels carry versioned names only; the linker looks for the plain ones.
  mkdir -p "$home/link/lib/stubs"
  for lib in cudart cublas cublasLt curand nvrtc; do
    ln -sf "$(ls "$root/lib/lib$lib.so."* | head -1)" "$home/link/lib/lib$lib.so"
  done
  # The driver library (libcuda) comes with the NVIDIA driver, not with any wheel: link
  # against a stub whose every entry point answers CUDA_ERROR_STUB_LIBRARY, as the
  # toolkit's own stubs/libcuda.so does. At run time the driver's libcuda.so.1 is used.
  bash "$repo/scripts/cuda_stub.sh" "$home/link/lib/stubs" >&2
  echo "${wheels[*]}" >"$stamp"
fi
cat <<ENV
export CUDA_ROOT="$root"
export CUDA_HOME="$home/link"
export NVCC="$root/bin/nvcc"
export PATH="$root/bin:\$PATH"
export CUDARC_CUDA_VERSION=13000
export LIBRARY_PATH="$home/link/lib:$home/link/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export TUNA_CUDA_LIBS="$root/lib"
export TUNA_CUDA_STUB="$home/link/lib/stubs"
ENV
