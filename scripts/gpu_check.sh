#!/usr/bin/env bash
# Checks tuna on a GPU against its CPU path, on the machine that has the GPU:
#   - the errors a GPU that cannot be used gives (none visible, an ordinal too high);
#   - `tuna embed` and `tuna generate` through the CLI with --device cuda;
#   - examples/device_parity: MiniLM embeddings (cosine >= 0.9999 to the CPU), SmolLM2 logits
#     (within 1e-3), the loss of one LoRA and one full training step before and after the
#     update (within 1e-4 relative), then training-step time and generation speed on the GPU.
#
#   bash scripts/gpu_check.sh [MINILM_DIR] [SMOLLM2_GGUF]       # builds with cargo first
#   TUNA_BIN_DIR=DIR bash scripts/gpu_check.sh [MINILM] [SMOL]   # DIR holds tuna, device_parity
#
# A model given as `-` is skipped (its checks can then run separately).
# Building needs nvcc (the system's, or `eval "$(bash scripts/cuda_toolkit.sh)"`); the compute
# capability comes from nvidia-smi unless CUDA_COMPUTE_CAP is set. TUNA_DEVICE (default cuda)
# picks the device; `TUNA_DEVICE=cpu` runs the same checks on the CPU alone. Prints one line or
# JSON object per result and exits non-zero if a check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
minilm="${1:-models/minilm}"
smol="${2:-models/smollm2.gguf}"
device="${TUNA_DEVICE:-cuda}"
if [ -z "${TUNA_BIN_DIR:-}" ]; then
  # The cuda build goes to its own target folder, as in scripts/cuda_build.sh.
  build=(--release -p tuna --bin tuna --example device_parity)
  out=target/release
  [ "$device" = cpu ] || { build+=(--features cuda --target-dir target/cuda); out=target/cuda/release; }
  cargo build "${build[@]}"
  cp "$out/examples/device_parity" "$out/device_parity"
  TUNA_BIN_DIR="$out"
fi
bin="$TUNA_BIN_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
  echo "no nvidia-smi"
echo "cpu threads: $(nproc)"

# expect_error CODE_TEXT ARGS...: the command must fail with one `error:` line holding CODE_TEXT.
expect_error() {
  local want=$1
  shift
  local err
  if err="$("$@" 2>&1 >/dev/null)"; then
    echo "FAIL (no error): $*"
    fail=1
  elif [[ "$err" == *"$want"* ]] && [ "$(grep -c . <<<"$err")" = 1 ]; then
    echo "ok: $err"
  else
    echo "FAIL: $* -> $err"
    fail=1
  fi
}

if [ "$device" != cpu ]; then
  echo "== a GPU that cannot be used"
  expect_error "the NVIDIA driver sees no GPU" \
    env CUDA_VISIBLE_DEVICES= "$bin/tuna" info --model "$minilm" --device cuda
  expect_error "cuda:7 does not exist" "$bin/tuna" info --model "$minilm" --device cuda:7
fi

echo "== the CLI on $device"
if [ "$minilm" != - ]; then
  printf '%s\n' "A man is eating food." "Free entry in 2 a wkly comp to win FA Cup final tkts." \
    "The cat sits outside." >"$work/texts.txt"
  "$bin/tuna" embed --model "$minilm" --device "$device" --no-cache --format lines \
    --input "$work/texts.txt" --out "$work/emb.jsonl" --json | tail -1
fi
if [ "$smol" != - ]; then
  "$bin/tuna" generate --model "$smol" --device "$device" --max-new-tokens 24 \
    "The history of the printing press" | tr '\n' ' '
  echo
fi

echo "== parity with the CPU and speed on $device"
"$bin/device_parity" "$device" "$minilm" "$smol" || fail=1
if [ "$fail" != 0 ]; then
  echo "gpu_check: FAILED"
  exit 1
fi
echo "gpu_check: all checks passed"
