#!/usr/bin/env bash
# Embedding throughput of `tuna embed` vs sentence-transformers (PyTorch) on SST-2 train (6,920
# sentences), MiniLM, 2 threads, batch 32, both in this one run. Prints both rates and the ratio.
#
#   REF_PYTHON=/path/to/venv/bin/python bash bench/embed_throughput.sh
#
# REF_PYTHON is a Python with `torch` and `sentence-transformers` installed (a venv outside the
# repo: python3 -m venv ../refvenv && ../refvenv/bin/pip install torch sentence-transformers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${REF_PYTHON:-python3}"
threads="${THREADS:-2}"
texts=../shared/data/sst2/stsa.binary.train
bash scripts/fetch_models.sh
cargo build --release -p tuna --quiet
# Warm-up (page cache, first-touch allocations), then the measured run.
RAYON_NUM_THREADS=$threads ./target/release/tuna embed --model models/minilm --input "$texts" \
  --format label-text --no-cache --quiet --threads "$threads" --batch-size 32 --max-len 256 >/dev/null
tuna_json=$(RAYON_NUM_THREADS=$threads ./target/release/tuna embed --model models/minilm --input "$texts" \
  --format label-text --no-cache --quiet --threads "$threads" --batch-size 32 --max-len 256 --json | tail -n 1)
ref_json=$(OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$py" bench/st_embed.py models/minilm "$texts" \
  --threads "$threads" --batch-size 32 --max-len 256 | tail -n 1)
python3 - "$tuna_json" "$ref_json" <<'PY'
import json, sys
t, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"tuna embed:            {t['texts_per_second']:8.1f} texts/s ({t['seconds']:.2f} s, {t['rows']} texts)")
print(f"sentence-transformers: {r['texts_per_second']:8.1f} texts/s ({r['seconds']:.2f} s, torch {r['torch']})")
print(f"ratio (tuna / reference): {t['texts_per_second'] / r['texts_per_second']:.2f}x")
PY
