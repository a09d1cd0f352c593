#!/usr/bin/env bash
# How tuna's training step, decoding speed and memory grow with model size: seeded random
# Llama-shaped GGUF models (crates/tuna-models/examples/random_llama_gguf.rs; blocks in Q4_1,
# tied Q8_0 embedding, SmolLM2's vocabulary and tokenizer) at the shapes of SmolLM2-135M,
# SmolLM2-360M, Llama-3.2-1B and SmolLM2-1.7B, each run with its weights in the stored type (the
# default) and decoded to f32 (TUNA_DTYPE=f32): seconds per LoRA SFT step (r 8 on q_proj/v_proj,
# batch 4 x 128 tokens in one piece, WARMUP warm-up then STEPS timed steps, the median; the
# process's peak resident memory) and batch-1 greedy decoding (NEW tokens after a 16-token
# prompt, one warm-up and one timed run; its peak resident memory). The models are written
# under target/scaling/ (not kept in the repository). Prints a Markdown table and writes
# target/scaling/scaling.svg (log-log).
#
#   THREADS=1 taskset -c 1 bash bench/scaling.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
THREADS="${THREADS:-1}"
export RAYON_NUM_THREADS="$THREADS"
OUT="${OUT:-target/scaling}"
VOCAB="${VOCAB:-models/smollm2.gguf}"
mkdir -p "$OUT"
# One build for all four (building them one package at a time unifies features differently and
# rebuilds candle for each).
cargo build --release -q -p tuna -p tuna-models -p tuna-rlhf -p tuna-lm -p tuna-train \
  --example random_llama_gguf --example lm_step_time --example gen_speed --example scaling_report
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
: > "$OUT/results.jsonl"
for shape in ${SHAPES:-135m 360m 1b 1.7b}; do
  model="$OUT/random-$shape.gguf"
  [ -f "$model" ] || ./target/release/examples/random_llama_gguf "$VOCAB" "$shape" "$model" > "$model.json"
  params=$(field parameters < "$model.json")
  for weights in stored f32; do
    s=$(TUNA_DTYPE=$weights ./target/release/examples/lm_step_time "$model" sft 4 128 "${STEPS:-2}" 0 "${WARMUP:-1}")
    g=$(TUNA_DTYPE=$weights ./target/release/examples/gen_speed "$model" 16 "${NEW:-32}" 1)
    line=$(python3 - "$shape" "$params" "$weights" "$s" "$g" <<'PY'
import json, sys
shape, params, weights, s, g = sys.argv[1:]
s, g = json.loads(s.splitlines()[-1]), json.loads(g.splitlines()[-1])
print(json.dumps({"shape": shape, "parameters": int(params), "weights": weights,
                  "step_s": s["median_step_s"], "step_rss_mib": s["peak_rss_mib"],
                  "tokens_per_s": g["decode_tokens_per_s"], "decode_rss_mib": g["peak_rss_mib"],
                  "threads": s["threads"]}))
PY
)
    echo "$line" | tee -a "$OUT/results.jsonl"
  done
done
./target/release/examples/scaling_report "$OUT/results.jsonl" "$OUT/scaling.svg"
