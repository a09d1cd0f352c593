"""Writes small PEFT fixtures (a tiny random BERT, adapters for it, and PEFT's outputs) for tuna's tests.

Usage (from the repository root):

    /path/to/venv/bin/python bench/reference/make_peft_fixture.py crates/tuna-adapt/tests/fixtures/peft

Everything is seeded, so rerunning rewrites the same files (on another CPU, a few values in
expected.json may come out 1e-6 apart, in the last rounded digit; the weights do not change). OUTDIR
receives:

    base/      the tiny random BertModel (save_pretrained: config.json, model.safetensors)
    lora/      LoRA r 2, alpha 4 on query and value, with init_lora_weights=False so that B is nonzero
    prompt/    prompt tuning, 3 virtual tokens, random init
    prefix/    prefix tuning, 3 virtual tokens, with the MLP reparameterisation (hidden 8) used in
               training; PEFT saves the projected prefix, `prompt_embeddings` [3, layers*2*hidden], as
               view(3, layers*2, heads, head_dim): rows 2l and 2l+1 are layer l's key and value prefixes
    dora/      DoRA: LoRA r 2, alpha 4 on query and value with use_dora=True and init_lora_weights=False;
               the magnitude vectors (`lora_magnitude_vector`, [out_features], initialised by PEFT to
               the norm of each output row of W + (alpha/r) B A) are then multiplied by seeded factors
               in [0.8, 1.2], so the outputs are not those of DoRA's initialisation. PEFT's layer
               computes m * (W + (alpha/r) B A) x / ||W + (alpha/r) B A||_row + bias.
    ia3/       IA3 on key, value and output.dense with feedforward_modules ["output.dense"], the
               vectors (`ia3_l`) set to seeded 1 + 0.3 * randn. "output.dense" matches both
               attention.output.dense and the feed-forward output.dense by suffix, so PEFT treats both
               as feed-forward: their vector [1, in_features] scales the layer's input; key and value
               are not, so their vector [out_features, 1] scales the layer's output, bias included.
    expected.json

expected.json holds `input_ids` (one row of 7 ids, no attention mask) and, as [7][hidden] lists rounded
to 6 decimals, the last hidden states of that row under the base model (`base_last_hidden_state`), the
LoRA model (`last_hidden_state`), the prompt-tuned model at the real tokens' positions, i.e. after the
3 virtual tokens (`prompt_last_hidden_state`), the prefix-tuned model
(`prefix_last_hidden_state`; real tokens take positions 3..9, as after a 3-token cache), the DoRA model
(`dora_last_hidden_state`) and the IA3 model (`ia3_last_hidden_state`). Each adapter is reloaded with
PeftModel.from_pretrained and checked against these outputs before the script finishes. DoRA and IA3
were added later and are seeded on their own (manual_seed 1 and 2), so the earlier files and values do
not depend on them. The tensor names and shapes in each new adapter_model.safetensors are printed.
"""
import argparse
import copy
import json
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# BertModel 5.x renamed `past_key_values` to `cache`; PEFT still passes the old name.
warnings.filterwarnings("ignore", category=FutureWarning)

import torch  # noqa: E402
import transformers  # noqa: E402
from peft import (  # noqa: E402
    IA3Config, LoraConfig, PeftModel, PrefixTuningConfig, PromptTuningConfig, PromptTuningInit, TaskType,
    get_peft_model)
from safetensors import safe_open  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

INPUT_IDS = [[2, 17, 45, 88, 5, 101, 3]]
VIRTUAL_TOKENS = 3


def rounded(t):
    return [[round(float(v), 6) for v in row] for row in t.tolist()]


@torch.no_grad()
def last_hidden(model, ids, skip=0):
    return model(input_ids=ids).last_hidden_state[0, skip:]


def save_adapter(model, path):
    model.save_pretrained(path)
    card = os.path.join(path, "README.md")  # PEFT's generated model card; not needed here
    if os.path.exists(card):
        os.remove(card)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    out = ap.parse_args().outdir
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    base = BertModel(config).eval()
    base.save_pretrained(os.path.join(out, "base"))
    ids = torch.tensor(INPUT_IDS)
    expected = {"input_ids": INPUT_IDS, "base_last_hidden_state": rounded(last_hidden(base, ids))}

    lora = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=2, lora_alpha=4, target_modules=["query", "value"], init_lora_weights=False)).eval()
    save_adapter(lora, os.path.join(out, "lora"))
    expected["last_hidden_state"] = rounded(last_hidden(lora, ids))

    prompt = get_peft_model(copy.deepcopy(base), PromptTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=VIRTUAL_TOKENS,
        prompt_tuning_init=PromptTuningInit.RANDOM)).eval()
    save_adapter(prompt, os.path.join(out, "prompt"))
    expected["prompt_last_hidden_state"] = rounded(last_hidden(prompt, ids, skip=VIRTUAL_TOKENS))

    prefix = get_peft_model(copy.deepcopy(base), PrefixTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=VIRTUAL_TOKENS,
        prefix_projection=True, encoder_hidden_size=8)).eval()
    save_adapter(prefix, os.path.join(out, "prefix"))
    expected["prefix_last_hidden_state"] = rounded(last_hidden(prefix, ids))

    torch.manual_seed(1)
    dora = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=2, lora_alpha=4, target_modules=["query", "value"], use_dora=True,
        init_lora_weights=False)).eval()
    with torch.no_grad():
        for name, p in dora.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(0.8 + 0.4 * torch.rand(p.shape))
    save_adapter(dora, os.path.join(out, "dora"))
    expected["dora_last_hidden_state"] = rounded(last_hidden(dora, ids))

    torch.manual_seed(2)
    ia3 = get_peft_model(copy.deepcopy(base), IA3Config(
        target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"])).eval()
    with torch.no_grad():
        for name, p in ia3.named_parameters():
            if "ia3_l" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape))
    save_adapter(ia3, os.path.join(out, "ia3"))
    expected["ia3_last_hidden_state"] = rounded(last_hidden(ia3, ids))

    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f)
        f.write("\n")

    # The saved files alone must reproduce the expected outputs.
    reloaded_base = BertModel.from_pretrained(os.path.join(out, "base")).eval()
    checks = [("base_last_hidden_state", reloaded_base, None, 0),
              ("last_hidden_state", reloaded_base, "lora", 0),
              ("prompt_last_hidden_state", reloaded_base, "prompt", VIRTUAL_TOKENS),
              ("prefix_last_hidden_state", reloaded_base, "prefix", 0),
              ("dora_last_hidden_state", reloaded_base, "dora", 0),
              ("ia3_last_hidden_state", reloaded_base, "ia3", 0)]
    for key, model, adapter, skip in checks:
        if adapter is not None:
            model = PeftModel.from_pretrained(copy.deepcopy(model), os.path.join(out, adapter)).eval()
        got = last_hidden(model, ids, skip)
        err = (got - torch.tensor(expected[key])).abs().max().item()
        assert err < 1e-5, f"{key}: reloaded output differs by {err}"
        print(f"{key}: reloaded max abs diff {err:.1e}")

    base_out = torch.tensor(expected["base_last_hidden_state"])
    for key in ["last_hidden_state", "prompt_last_hidden_state", "prefix_last_hidden_state",
                "dora_last_hidden_state", "ia3_last_hidden_state"]:
        diff = (torch.tensor(expected[key]) - base_out).abs().max().item()
        print(f"{key}: max abs diff from the base model {diff:.3f}")

    for adapter in ["dora", "ia3"]:
        print(f"{adapter}/adapter_model.safetensors:")
        with safe_open(os.path.join(out, adapter, "adapter_model.safetensors"), framework="pt") as f:
            for name in sorted(f.keys()):
                print(f"  {name} {list(f.get_slice(name).get_shape())}")


if __name__ == "__main__":
    main()
