#!/usr/bin/env python3
"""Re-score tuna's in-context-learning prompts with transformers and report how often the label
choices agree.

`tuna icl ... --dump prompts.jsonl` writes, per query, the exact prompt, the text each label adds
after it (" negative", " positive", ...) and, with --calibrate, the content-free prompt. This script
tokenises the same texts with the model's own tokenizer (transformers reads it from the GGUF),
scores every continuation by its mean log-probability per token (or the sum, with
--no-length-norm), subtracts the content-free scores when the dump was calibrated, and compares
its choice with tuna's.

    /path/to/venv/bin/python bench/reference/icl_reference.py --dump prompts.jsonl \\
        --models models --gguf smollm2.gguf --out reference.json

Needs torch, transformers and gguf (pip install torch transformers gguf).
"""
import argparse
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def load(models, gguf):
    tok = AutoTokenizer.from_pretrained(models, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=gguf, dtype=torch.float32)
    return tok, model.eval()


def score(tok, model, prompt, continuations, length_norm):
    """Mean (or summed) log-probability of each continuation after prompt, one padded batch."""
    ctx = tok(prompt)["input_ids"]
    conts = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations]
    seqs = [ctx + c[:-1] for c in conts]
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.double(), dim=-1)
    out = []
    for b, c in enumerate(conts):
        total = sum(logp[b, len(ctx) - 1 + j, t].item() for j, t in enumerate(c))
        out.append(total / len(c) if length_norm else total)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dump", required=True, help="JSON lines written by `tuna icl --dump`")
    ap.add_argument("--models", default="models", help="directory holding the GGUF file")
    ap.add_argument("--gguf", default="smollm2.gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-length-norm", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="re-score only the first N queries")
    ap.add_argument("--skip", type=int, default=0, help="start after the first N queries")
    ap.add_argument("--out", default=None, help="write the summary (and disagreements) here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok, model = load(args.models, args.gguf)
    rows = [json.loads(l) for l in open(args.dump, encoding="utf-8") if l.strip()]
    rows = rows[args.skip:][:args.limit]
    agree, ref_correct, tuna_correct, worst, disagreements = 0, 0, 0, 0.0, []
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        s = score(tok, model, r["prompt"], r["continuations"], not args.no_length_norm)
        if r.get("calibrated"):
            cf = score(tok, model, r["content_free_prompt"], r["continuations"], not args.no_length_norm)
            s = [a - b for a, b in zip(s, cf)]
        choice = max(range(len(s)), key=lambda j: (s[j], -j))
        tuna_choice = max(range(len(r["scores"])), key=lambda j: (r["scores"][j], -j))
        worst = max(worst, max(abs(a - b) for a, b in zip(s, r["scores"])))
        agree += choice == tuna_choice
        tuna_correct += r["prediction"] == r["gold"]
        ref_correct += r["labels"][choice] == r["gold"]
        if choice != tuna_choice:
            disagreements.append({"index": r["index"], "tuna": r["scores"], "reference": s})
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(rows)}: agreement {agree / (i + 1):.4f}", file=sys.stderr, flush=True)
    n = len(rows)
    summary = {
        "n": n,
        "agreement": agree / n,
        "tuna_accuracy": tuna_correct / n,
        "reference_accuracy": ref_correct / n,
        "max_abs_score_difference": worst,
        "disagreements": disagreements,
        "seconds": time.perf_counter() - t0,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "disagreements"}, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
