#!/usr/bin/env bash
# Embedding throughput of `tuna embed` vs sentence-transformers (PyTorch) on SST-2 train (6,920
# sentences), MiniLM, 2 threads, batch 32, truncation 256, both in this one run. The two are
# run alternately for ROUNDS rounds (default 3) so that drifts in machine speed hit both; prints
# every round, the medians and the ratio of the medians.
#
#   REF_PYTHON=/path/to/venv/bin/python bash bench/embed_throughput.sh
#
# REF_PYTHON is a Python with `torch` and `sentence-transformers` installed (a venv outside the
# repo: python3 -m venv ../refvenv && ../refvenv/bin/pip install torch sentence-transformers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${REF_PYTHON:-python3}"
threads="${THREADS:-2}"
rounds="${ROUNDS:-3}"
texts=../shared/data/sst2/stsa.binary.train
bash scripts/fetch_models.sh
cargo build --release -p tuna --quiet
run_tuna() {
  RAYON_NUM_THREADS=$threads ./target/release/tuna embed --model models/minilm --input "$texts" \
    --format label-text --no-cache --quiet --threads "$threads" --batch-size 32 --max-len 256 --json | tail -n 1
}
run_ref() {
  OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$py" bench/st_embed.py models/minilm "$texts" \
    --threads "$threads" --batch-size 32 --max-len 256 2>/dev/null | tail -n 1
}
run_tuna >/dev/null # warm-up: page cache, first-touch allocations
results=()
for r in $(seq "$rounds"); do
  results+=("$(run_tuna)" "$(run_ref)")
done
python3 - "${results[@]}" <<'PY'
import json, statistics, sys
rows = [json.loads(a) for a in sys.argv[1:]]
tuna, ref = rows[0::2], rows[1::2]
for i, (t, r) in enumerate(zip(tuna, ref), 1):
    print(f"round {i}: tuna {t['texts_per_second']:7.1f} texts/s   sentence-transformers "
          f"{r['texts_per_second']:7.1f} texts/s   ratio {t['texts_per_second'] / r['texts_per_second']:.2f}x")
mt = statistics.median(t["texts_per_second"] for t in tuna)
mr = statistics.median(r["texts_per_second"] for r in ref)
print(f"median: tuna {mt:.1f} texts/s, sentence-transformers {mr:.1f} texts/s (torch {ref[0]['torch']}, "
      f"{tuna[0]['rows']} texts)")
print(f"ratio (tuna / reference, medians): {mt / mr:.2f}x")
PY
