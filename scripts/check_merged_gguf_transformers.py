"""Greedy decoding of a GGUF model (e.g. one written by `tuna merge --gguf`) by transformers and by
tuna, token by token. Run by hand with a Python that has torch, transformers and gguf:

    python scripts/check_merged_gguf_transformers.py TUNA_BINARY MODEL.gguf [NEW] [PROMPT ...]

transformers loads the file with `AutoModelForCausalLM.from_pretrained(dir, gguf_file=name)`
(its weights decoded to f32); tuna runs `tuna generate -m MODEL.gguf --ignore-eos --json` (the
weights in their stored types, as tuna runs by default). Both decode NEW greedy tokens (default
64), end-of-sequence tokens included, after the same prompt ids. Prints, per prompt, how many of
the NEW tokens are equal at the same position and how long the common prefix is, then one JSON
line with the totals.
"""
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "Write a short poem about the sea.",
    "def fibonacci(n):",
    "Here are three tips for staying healthy:",
]


def tuna_tokens(binary, model, prompt, new):
    out = subprocess.run(
        [binary, "generate", "-m", model, prompt, "--max-new-tokens", str(new), "--ignore-eos",
         "--json", "-q"],
        check=True, capture_output=True, text=True,
        env={**os.environ, "TUNA_DTYPE": os.environ.get("TUNA_DTYPE", "stored")})
    g = json.loads(out.stdout.strip().splitlines()[-1])["generation"]
    return g["tokens"], g["prompt_tokens"]


def greedy(model, ids, new):
    """NEW argmax tokens after `ids`, end-of-sequence included like any other token (`generate`
    has no switch for that: `min_new_tokens` forbids the end tokens instead)."""
    out, past, cur = [], None, ids
    with torch.no_grad():
        for _ in range(new):
            o = model(input_ids=cur, past_key_values=past, use_cache=True)
            past = o.past_key_values
            nxt = int(o.logits[0, -1].argmax())
            out.append(nxt)
            cur = torch.tensor([[nxt]])
    return out


def main():
    binary, path = sys.argv[1], sys.argv[2]
    new = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    prompts = sys.argv[4:] or PROMPTS
    folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    same_total = prefix_total = 0
    for p in prompts:
        theirs, n_prompt = tuna_tokens(binary, path, p, new)
        ids = tok(p, return_tensors="pt").input_ids
        assert ids.shape[1] == n_prompt, (p, ids.shape[1], n_prompt)
        ours = greedy(model, ids, new)
        same = sum(a == b for a, b in zip(ours, theirs))
        pairs = list(zip(ours, theirs))
        prefix = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
        same_total += same
        prefix_total += prefix
        print(f"{p!r}: {same}/{new} tokens equal, common prefix {prefix}")
    print(json.dumps({"model": path, "prompts": len(prompts), "new_tokens": new,
                      "equal": same_total, "of": new * len(prompts), "common_prefix": prefix_total}))


if __name__ == "__main__":
    main()
