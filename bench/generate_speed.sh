#!/usr/bin/env bash
# Generation speed at batch 1, tuna vs transformers' `generate`, side by side on this machine:
# SmolLM2-135M from the GGUF, 128 greedy tokens after a 64-token prompt, EOS ignored; tuna with
# the weights in the file's stored type (the default) and decoded to f32 (--dtype f32), and
# transformers (f32); one warm-up and 3 timed runs each, the three alternating for ROUNDS rounds
# with the same threads. Prints each round, the ratios of the medians (> 1: the first faster)
# and how many of the 128 tokens each tuna run shares with transformers'. With BEFORE set to the
# gen_speed example built from an earlier commit (e.g. 42f4691, the last before weights stayed
# quantised: all f32), that build is timed in the same rounds too.
#
#   REF_PYTHON=/path/to/venv/bin/python bash bench/generate_speed.sh
#   BEFORE=/path/to/old/target/release/examples/gen_speed REF_PYTHON=... bash bench/generate_speed.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${REF_PYTHON:?set REF_PYTHON to a python with torch, transformers and gguf}"
THREADS="${THREADS:-2}"
export RAYON_NUM_THREADS="$THREADS"
cargo build --release -q -p tuna-lm --example gen_speed
tuna=(); tf32=(); ref=(); old=()
tps() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["tokens_per_s"])'; }
same() { python3 -c 'import json,sys; a,b=(json.loads(x)["tokens"] for x in sys.argv[1:]); print(sum(x==y for x,y in zip(a,b)))' "$1" "$2"; }
for round in $(seq "${ROUNDS:-3}"); do
  t=$(TUNA_DTYPE=stored ./target/release/examples/gen_speed models/smollm2.gguf 64 128 3)
  f=$(TUNA_DTYPE=f32 ./target/release/examples/gen_speed models/smollm2.gguf 64 128 3)
  r=$(HF_HUB_OFFLINE=1 "$REF_PYTHON" bench/reference/generate_speed.py --threads "$THREADS" 2>/dev/null | tail -1)
  tt=$(echo "$t" | tps); ff=$(echo "$f" | tps); rr=$(echo "$r" | tps)
  if [ -n "${BEFORE:-}" ]; then
    o=$("$BEFORE" models/smollm2.gguf 64 128 3 | tps)
    echo "round $round: the earlier build $o tokens/s"
    old+=("$o")
  fi
  echo "round $round: tuna stored $tt, tuna f32 $ff, transformers $rr tokens/s;" \
    "tokens shared with transformers: stored $(same "$t" "$r")/128, f32 $(same "$f" "$r")/128"
  tuna+=("$tt"); tf32+=("$ff"); ref+=("$rr")
done
python3 - "${#tuna[@]}" "${tuna[@]}" "${tf32[@]}" "${ref[@]}" "${old[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); v = list(map(float, sys.argv[2:]))
t, f, r = (statistics.median(v[i * n:(i + 1) * n]) for i in range(3))
print(f"generation: tuna stored {t:.1f}, tuna f32 {f:.1f}, transformers {r:.1f} tokens/s; "
      f"stored / f32 {t / f:.2f}x, stored / transformers {t / r:.2f}x, f32 / transformers {f / r:.2f}x")
if len(v) > 3 * n:
    o = statistics.median(v[3 * n:])
    print(f"earlier build {o:.1f} tokens/s; stored / earlier {t / o:.2f}x, f32 / earlier {f / o:.2f}x")
PY
