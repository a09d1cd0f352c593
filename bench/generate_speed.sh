#!/usr/bin/env bash
# Generation speed at batch 1, tuna vs transformers' `generate`, side by side on this machine:
# SmolLM2-135M from the GGUF (f32 weights on both sides), 128 greedy tokens after a 64-token
# prompt, EOS ignored; one warm-up and 3 timed runs each, the two alternating for ROUNDS rounds
# with the same threads. Prints each round and the ratio of the medians (> 1: tuna faster).
#
#   REF_PYTHON=/path/to/venv/bin/python bash bench/generate_speed.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${REF_PYTHON:?set REF_PYTHON to a python with torch, transformers and gguf}"
THREADS="${THREADS:-2}"
export RAYON_NUM_THREADS="$THREADS"
cargo build --release -q -p tuna-lm --example gen_speed
tuna=(); ref=()
for round in $(seq "${ROUNDS:-3}"); do
  t=$(./target/release/examples/gen_speed models/smollm2.gguf 64 128 3)
  r=$(HF_HUB_OFFLINE=1 "$REF_PYTHON" bench/reference/generate_speed.py --threads "$THREADS" 2>/dev/null | tail -1)
  tt=$(echo "$t" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["tokens_per_s"])')
  rr=$(echo "$r" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["tokens_per_s"])')
  echo "round $round: tuna $tt tokens/s, transformers $rr tokens/s"
  echo "  tuna $t"; echo "  transformers $r"
  tuna+=("$tt"); ref+=("$rr")
done
python3 - "${tuna[@]}" "${ref[@]}" <<'PY'
import statistics, sys
v = list(map(float, sys.argv[1:])); n = len(v) // 2
t, r = statistics.median(v[:n]), statistics.median(v[n:])
print(f"generation: tuna {t:.1f} tokens/s, transformers {r:.1f} tokens/s, speed ratio {t / r:.2f}x")
PY
