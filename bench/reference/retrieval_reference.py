"""Reference retrieval for `tuna index eval`: the same chunks, embedded by sentence-transformers.

Reads the chunks of a tuna SQLite index (plain tables `chunks` and `docs`), embeds each as tuna
does (the document title, a newline, the chunk text; mean pooling, unit length) and every
question with sentence-transformers, ranks chunks by cosine similarity, and reports recall@1,
recall@5, recall@10 and MRR. With --tuna-out (the JSONL of `tuna index eval --out`), also how
often the two rank the same first relevant position and the same top source.

    /path/to/venv/bin/python bench/reference/retrieval_reference.py --index squad.db \
        --questions ../shared/data/squad_subset/expmrc-squad-dev.json --model models/minilm \
        --tuna-out retrieval.jsonl
"""

import argparse
import json
import sqlite3

import numpy as np
from sentence_transformers import SentenceTransformer


def squad_questions(path):
    name = path.replace("\\", "/").split("/")[-1]
    out = []
    for art in json.load(open(path))["data"]:
        for i, p in enumerate(art["paragraphs"]):
            for qa in p["qas"]:
                out.append((qa["id"], qa["question"], f"{name}#{art['title']}/{i}"))
    return out


def matches(stored, relevant):
    return stored == relevant or (stored.endswith(relevant) and stored[: -len(relevant)].endswith("/"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--questions", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tuna-out")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    db = sqlite3.connect(a.index)
    rows = db.execute(
        "SELECT d.source, d.title, c.text FROM chunks c JOIN docs d ON d.id = c.doc_id ORDER BY c.id"
    ).fetchall()
    sources = [r[0] for r in rows]
    inputs = [f"{r[1]}\n{r[2]}" if r[1] else r[2] for r in rows]
    model = SentenceTransformer(a.model, device="cpu")
    model.max_seq_length = 256
    chunks = model.encode(inputs, batch_size=32, normalize_embeddings=True)
    qs = squad_questions(a.questions)
    qv = model.encode([q[1] for q in qs], batch_size=32, normalize_embeddings=True)
    sims = qv @ chunks.T
    ranks, tops = [], []
    for (qid, _, rel), s in zip(qs, sims):
        order = np.argsort(-s, kind="stable")[:10]
        top = [sources[j] for j in order]
        tops.append(top[0])
        r = next((k + 1 for k, src in enumerate(top) if matches(src, rel)), None)
        ranks.append(r)
    n = len(ranks)
    res = {
        "questions": n,
        "chunks": len(rows),
        "recall_at_1": sum(r == 1 for r in ranks if r) / n,
        "recall_at_5": sum(1 for r in ranks if r and r <= 5) / n,
        "recall_at_10": sum(1 for r in ranks if r) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
    }
    if a.tuna_out:
        tuna = [json.loads(line) for line in open(a.tuna_out)]
        same_rank = sum(t["rank"] == r for t, r in zip(tuna, ranks))
        same_top = sum(t["retrieved"][0] == top for t, top in zip(tuna, tops))
        res["same_rank_as_tuna"] = same_rank / len(tuna)
        res["same_top_source_as_tuna"] = same_top / len(tuna)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
