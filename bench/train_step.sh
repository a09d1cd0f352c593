#!/usr/bin/env bash
# Training speed per step, tuna vs PyTorch (transformers + PEFT), side by side on this machine:
# MiniLM sentence classifier, batch 16 x 128 tokens of random ids, `full` and `lora` (r 8 on
# query/value), forward + backward + clipping + AdamW; 3 warm-up and 10 timed steps, the two
# implementations alternating for 3 rounds with the same threads. Prints each round and the ratio
# of the medians (> 1: tuna faster) and each side's peak resident memory.
#
#   REF_PYTHON=/path/to/venv/bin/python bash bench/train_step.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${REF_PYTHON:?set REF_PYTHON to a python with torch, transformers and peft}"
THREADS="${THREADS:-2}"
export RAYON_NUM_THREADS="$THREADS"
MODEL="${MODEL:-models/minilm}"
cargo build --release -q -p tuna-train --example step_time
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
for method in full lora; do
  tuna=(); ref=(); tmem=(); rmem=()
  for round in $(seq "${ROUNDS:-3}"); do
    t=$(./target/release/examples/step_time "$MODEL" "$method" 16 128 10)
    r=$("$REF_PYTHON" bench/reference/step_time.py --model "$MODEL" --method "$method" --threads "$THREADS" --steps 10 2>/dev/null)
    ts=$(echo "$t" | field median_step_s); rs=$(echo "$r" | field median_step_s)
    tm=$(echo "$t" | field peak_rss_mib); rm=$(echo "$r" | field peak_rss_mib)
    echo "$method round $round: tuna ${ts}s/step ${tm} MiB, PyTorch ${rs}s/step ${rm} MiB"
    tuna+=("$ts"); ref+=("$rs"); tmem+=("$tm"); rmem+=("$rm")
  done
  python3 - "$method" "${tuna[@]}" "${ref[@]}" "${tmem[@]}" "${rmem[@]}" <<'PY'
import statistics, sys
m = sys.argv[1]; v = list(map(float, sys.argv[2:]))
n = len(v) // 4
t, r = statistics.median(v[:n]), statistics.median(v[n:2 * n])
tm, rm = max(v[2 * n:3 * n]), max(v[3 * n:])
print(f"{m}: tuna {t:.3f} s/step, PyTorch {r:.3f} s/step, speed ratio {r / t:.2f}x; "
      f"peak RSS tuna {tm:.0f} MiB, PyTorch {rm:.0f} MiB")
PY
done
