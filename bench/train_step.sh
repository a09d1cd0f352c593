#!/usr/bin/env bash
# Training speed per step, tuna vs PyTorch (transformers + PEFT), side by side on this machine:
# MiniLM sentence classifier, batch 16 x 128 tokens of random ids, `full` and `lora` (r 8 on
# query/value), forward + backward + clipping + AdamW; 3 warm-up and 10 timed steps, the two
# implementations alternating for 3 rounds with the same threads. Prints each round and the ratio
# of the medians (> 1: tuna faster).
#
#   REF_PYTHON=/path/to/venv/bin/python bash bench/train_step.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${REF_PYTHON:?set REF_PYTHON to a python with torch, transformers and peft}"
THREADS="${THREADS:-2}"
export RAYON_NUM_THREADS="$THREADS"
MODEL="${MODEL:-models/minilm}"
cargo build --release -q -p tuna-train --example step_time
for method in full lora; do
  tuna=(); ref=()
  for round in $(seq "${ROUNDS:-3}"); do
    t=$(./target/release/examples/step_time "$MODEL" "$method" 16 128 10 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["median_step_s"])')
    r=$("$REF_PYTHON" bench/reference/step_time.py --model "$MODEL" --method "$method" --threads "$THREADS" --steps 10 2>/dev/null | tail -1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["median_step_s"])')
    echo "$method round $round: tuna ${t}s/step, PyTorch ${r}s/step"
    tuna+=("$t"); ref+=("$r")
  done
  python3 - "$method" "${tuna[@]}" "${ref[@]}" <<'PY'
import statistics, sys
m = sys.argv[1]; v = list(map(float, sys.argv[2:]))
n = len(v) // 2
t, r = statistics.median(v[:n]), statistics.median(v[n:])
print(f"{m}: tuna {t:.3f} s/step, PyTorch {r:.3f} s/step, speed ratio {r / t:.2f}x")
PY
done
