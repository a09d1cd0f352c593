"""Reads adapters that tuna wrote with PEFT's own loader and checks them against tuna's merge.

For each run directory (a tuna finetuning run whose method writes a PEFT adapter, e.g. LoRA, DoRA or
IA3, on a BERT encoder) and the checkpoint `tuna merge` wrote from it:

- PeftModel.from_pretrained(base, RUN/adapter) must load every tensor of the adapter (no missing or
  unexpected keys);
- the unmerged PEFT model's last hidden states on a few sentences must equal those of the tuna-merged
  checkpoint loaded by transformers, within --tol;
- PEFT's merge_and_unload() must give the same weights as tuna's merge, within --tol.

Usage (from the repository root, with a venv that has torch, transformers and peft):

    tuna train --method dora --model models/minilm --data DATA --out runs/dora
    tuna merge --run runs/dora --out runs/dora-merged
    /path/to/venv/bin/python bench/reference/check_tuna_adapters.py --model models/minilm \
        runs/dora=runs/dora-merged [runs/ia3=runs/ia3-merged ...]
"""
import argparse
import os
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoTokenizer, BertModel  # noqa: E402

SENTENCES = ["free cash prize , call now !", "see you later at the film", "a dull , tedious movie"]


def check(model_dir, run, merged, tol):
    tok = AutoTokenizer.from_pretrained(model_dir)
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    base = BertModel.from_pretrained(model_dir).eval()
    peft = PeftModel.from_pretrained(base, os.path.join(run, "adapter")).eval()
    want = BertModel.from_pretrained(merged).eval()
    with torch.no_grad():
        got = peft(**batch).last_hidden_state
        ref = want(**batch).last_hidden_state
        with peft.disable_adapter():
            plain = peft(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).bool()
    hidden_diff = (got - ref).abs().masked_select(mask).max().item()
    # How far the adapter moves the outputs: the check means something only when this is large.
    moved = (got - plain).abs().masked_select(mask).max().item()
    unloaded = peft.merge_and_unload().state_dict()
    tuna_weights = load_file(os.path.join(merged, "model.safetensors"))
    weight_diff, compared = 0.0, 0
    for name, w in unloaded.items():
        key = name if name in tuna_weights else f"bert.{name}"
        if key not in tuna_weights:
            continue
        weight_diff = max(weight_diff, (w - tuna_weights[key]).abs().max().item())
        compared += 1
    ok = hidden_diff <= tol and weight_diff <= tol and compared > 0 and moved > 100 * tol
    print(f"{run}: peft_type {peft.peft_config['default'].peft_type.value}, adapter moves the "
          f"hidden states by up to {moved:.2e}; PEFT vs tuna: hidden states max diff "
          f"{hidden_diff:.2e}, merged weights max diff {weight_diff:.2e} over {compared} tensors: "
          f"{'ok' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the base model directory the runs were trained on")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("runs", nargs="+", help="RUN=MERGED pairs")
    args = ap.parse_args()
    torch.manual_seed(0)
    results = [check(args.model, *pair.split("=", 1), args.tol) for pair in args.runs]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
