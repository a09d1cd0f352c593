#!/usr/bin/env bash
# The RLHF pipeline on SmolLM2-135M with the documented settings (docs/results/rlhf.md):
# supervised finetuning on the instruction data, a reward model on the polite/impolite pairs,
# PPO of the SFT model against it, DPO on the same pairs, and a reward model on HH-RLHF
# harmless-base. Each stage writes a run directory under runs/ (a stopped stage continues with
# the same command plus --resume). Stages already finished are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
bash scripts/fetch_models.sh
cargo build --release -p tuna
T=./target/release/tuna
D=../shared/data
P=$D/preferences/instruction-data-with-preference.json
I=$D/instructions/instruction-data.json
stage() { # NAME COMMAND...: runs COMMAND unless runs/NAME exists
  local name=$1; shift
  if [ -d "runs/$name" ]; then echo "runs/$name exists: skipped"; return; fi
  local resume=(); [ -d "runs/$name.partial" ] && resume=(--resume)
  "$@" -o "runs/$name" "${resume[@]}"
}
stage sft $T sft -m models/smollm2.gguf -d $I --epochs 2 --train-batch 8
stage rm $T reward train -m models/smollm2.gguf -d $P --method head --unfreeze-last 4 --lr 2e-4 \
  --epochs 1 --train-batch 8
stage ppo $T ppo -m runs/sft/model --reward runs/rm -d $I --iterations 25 --rollouts 16 \
  --minibatch 4 --ppo-epochs 2 --eval-every 0 --max-new-tokens 64 --lr 1e-3 --warmup 0 \
  --schedule constant
stage dpo $T dpo -m runs/sft/model -d $P --limit 300 --epochs 1 --train-batch 8
stage rm-hh $T reward train -m models/smollm2.gguf -d $D/preferences/harmless-base-test.jsonl.gz \
  --limit 500 --held-out 0.3 --max-len 256 --method head --unfreeze-last 4 --lr 2e-4 --epochs 1 \
  --train-batch 8
