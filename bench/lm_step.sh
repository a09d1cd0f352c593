#!/usr/bin/env bash
# Decoder training speed and memory per step, tuna vs PyTorch (transformers + PEFT), side by side
# on this machine: SmolLM2-135M (the GGUF file, f32 on both sides) with LoRA r 8 on q_proj/v_proj,
# `sft` (batch 8 x 256 tokens, loss on the last three quarters) and `dpo` (batch 8 pairs of
# 256-token sequences, a shared prompt, beta 0.1 against precomputed reference log-probabilities);
# forward + backward + clipping + AdamW; 2 warm-up and 5 timed steps, the two implementations
# alternating for 3 rounds with the same threads. tuna runs as the CLI does (micro-batches of 2);
# PyTorch runs the whole batch, as transformers' Trainer and TRL do. Prints each round, the ratio
# of the medians (> 1: tuna faster) and each side's peak resident memory.
#
#   REF_PYTHON=/path/to/venv/bin/python THREADS=1 taskset -c 1 bash bench/lm_step.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${REF_PYTHON:?set REF_PYTHON to a python with torch, transformers, peft and gguf}"
THREADS="${THREADS:-2}"
export RAYON_NUM_THREADS="$THREADS"
MODEL="${MODEL:-models/smollm2.gguf}"
MICRO="${MICRO:-2}"
cargo build --release -q -p tuna-rlhf --example lm_step_time
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
for stage in ${STAGES:-sft dpo}; do
  tuna=(); ref=(); tmem=(); rmem=()
  for round in $(seq "${ROUNDS:-3}"); do
    t=$(./target/release/examples/lm_step_time "$MODEL" "$stage" 8 256 5 "$MICRO")
    r=$("$REF_PYTHON" bench/reference/lm_step_time.py --model "$MODEL" --stage "$stage" --threads "$THREADS" 2>/dev/null)
    ts=$(echo "$t" | field median_step_s); rs=$(echo "$r" | field median_step_s)
    tm=$(echo "$t" | field peak_rss_mib); rm=$(echo "$r" | field peak_rss_mib)
    echo "$stage round $round: tuna ${ts}s/step ${tm} MiB, PyTorch ${rs}s/step ${rm} MiB"
    tuna+=("$ts"); ref+=("$rs"); tmem+=("$tm"); rmem+=("$rm")
  done
  python3 - "$stage" "${tuna[@]}" "${ref[@]}" "${tmem[@]}" "${rmem[@]}" <<'PY'
import statistics, sys
s = sys.argv[1]; v = list(map(float, sys.argv[2:]))
n = len(v) // 4
t, r = statistics.median(v[:n]), statistics.median(v[n:2 * n])
tm, rm = max(v[2 * n:3 * n]), max(v[3 * n:])
print(f"{s}: tuna {t:.3f} s/step, PyTorch {r:.3f} s/step, speed ratio {r / t:.2f}x; "
      f"peak RSS tuna {tm:.0f} MiB, PyTorch {rm:.0f} MiB")
PY
done
