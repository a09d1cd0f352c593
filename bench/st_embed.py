"""Reference side of bench/embed_throughput.sh: sentence-transformers on PyTorch embeds the same
texts with the same threads, batch size and truncation as `tuna embed`, and prints one JSON line.

Usage: python bench/st_embed.py MODEL_DIR TEXTS_FILE --threads 2 --batch-size 32 --max-len 256
TEXTS_FILE is SST-2's `label text` format; the label is dropped as tuna does.
"""
import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("texts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(a.texts, encoding="utf-8") as f:
        texts = [line.split(" ", 1)[1].strip() for line in f if line.strip()]
    model = SentenceTransformer(a.model, device="cpu")
    model.max_seq_length = a.max_len
    model.encode(texts[:64], batch_size=a.batch_size)  # warm-up
    t0 = time.perf_counter()
    with torch.inference_mode():
        emb = model.encode(texts, batch_size=a.batch_size, convert_to_numpy=True)
    secs = time.perf_counter() - t0
    print(json.dumps({"impl": "sentence-transformers", "torch": torch.__version__, "rows": len(texts),
                      "dim": int(emb.shape[1]), "seconds": secs, "texts_per_second": len(texts) / secs}))


if __name__ == "__main__":
    main()
