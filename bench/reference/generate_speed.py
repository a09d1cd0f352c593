#!/usr/bin/env python3
"""Generation speed at batch 1 with transformers' `generate`: NEW greedy tokens after the first
PROMPT tokens of a fixed paragraph (the same text as crates/tuna-lm/examples/gen_speed.rs), EOS
ignored, one warm-up run, then the median of RUNS. The PyTorch side of bench/generate_speed.sh.

    /path/to/venv/bin/python bench/reference/generate_speed.py --models models --gguf smollm2.gguf
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes "
        "Gutenberg combined movable metal type, oil-based inks and a wooden press adapted from those used to make "
        "wine. Within a few decades, printing shops had spread to more than two hundred cities across Europe, and "
        "the price of books fell so far that ordinary merchants could afford them. Scholars argue about how much "
        "the press changed the world, but few doubt that it made knowledge cheaper to copy and harder to suppress.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="models")
    ap.add_argument("--gguf", default="smollm2.gguf")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.models, gguf_file=args.gguf)
    model = AutoModelForCausalLM.from_pretrained(args.models, gguf_file=args.gguf, dtype=torch.float32).eval()
    ids = torch.tensor([tok(TEXT)["input_ids"][:args.prompt]])
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=args.new, min_new_tokens=args.new,
              do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.inference_mode():
        model.generate(ids, **kw)
        totals, new_ids = [], None
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = model.generate(ids, **kw)
            totals.append(time.perf_counter() - t0)
            new_ids = out[0, ids.shape[1]:].tolist()
    total = statistics.median(totals)
    print(json.dumps({"prompt_tokens": args.prompt, "new_tokens": args.new, "runs": args.runs,
                      "median_total_s": total, "tokens_per_s": args.new / total, "tokens": new_ids,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
