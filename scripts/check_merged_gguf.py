"""Checks a GGUF model written by `tuna merge --gguf` with the `gguf` package (llama.cpp's own
Python reader), against the base GGUF and the PEFT LoRA adapter it was merged from.

    python3 scripts/check_merged_gguf.py MERGED.gguf BASE.gguf PEFT_DIR N_HEAD N_KV_HEAD TOL

Checks that the merged file has the base's metadata (architecture, hyperparameters, tokenizer;
`general.file_type` may differ), the base's tensor names and shapes, norms in F32, and that every
weight decodes (gguf's own dequantiser) to the base's plus alpha/r * B @ A, with llama.cpp's Q/K
row permutation applied to the delta for the llama architecture (implemented here independently,
as llama.cpp's converter does), within TOL of the largest weight's magnitude. Prints one JSON
line; exits non-zero on the first mismatch.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

from check_gguf_adapter import MODULES, field, permute, read_safetensors


def weights(reader):
    return {t.name: t for t in reader.tensors}


def decoded(t):
    # ggml lists dimensions innermost first; numpy's shape is the reverse.
    shape = [int(x) for x in reversed(list(t.shape))]
    return dequantize(np.asarray(t.data), t.tensor_type).reshape(shape).astype(np.float64)


def main():
    merged_path, base_path, peft_dir, n_head, n_kv, tol = sys.argv[1:7]
    n_head, n_kv, tol = int(n_head), int(n_kv), float(tol)
    merged, base = GGUFReader(merged_path), GGUFReader(base_path)
    arch = field(base, "general.architecture")
    skip = {"general.file_type", "general.alignment", "general.quantization_version"}
    keys = [k for k in base.fields if k not in skip and not k.startswith("GGUF.")]
    for k in keys:
        assert k in merged.fields, f"metadata {k} missing"
        a, b = base.fields[k], merged.fields[k]
        assert [bytes(a.parts[i]) for i in a.data] == [bytes(b.parts[i]) for i in b.data], k
    mt, bt = weights(merged), weights(base)
    assert sorted(mt) == sorted(bt), (sorted(set(mt) ^ set(bt)))
    cfg = json.load(open(f"{peft_dir}/adapter_config.json"))
    scale = cfg["lora_alpha"] / cfg["r"]
    peft = read_safetensors(f"{peft_dir}/adapter_model.safetensors")
    deltas = {}
    for key, a in peft.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")]
        b = peft[key.replace("lora_A", "lora_B")]
        layer, rest = module[len("model.layers."):].split(".", 1)
        d = scale * (b.astype(np.float64) @ a.astype(np.float64))
        if arch == "llama" and rest == "self_attn.q_proj":
            d = permute(d, n_head)
        elif arch == "llama" and rest == "self_attn.k_proj":
            d = permute(d, n_kv)
        deltas[f"blk.{layer}.{MODULES[rest]}.weight"] = d
    worst, types = 0.0, {}
    for name, t in mt.items():
        assert list(t.shape) == list(bt[name].shape), (name, t.shape, bt[name].shape)
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        if len(t.shape) == 1 or t.shape[1] == 1:
            assert t.tensor_type.name == "F32", (name, t.tensor_type.name)
        want = decoded(bt[name]) + deltas.get(name, 0.0)
        err = np.abs(decoded(t) - want).max() / max(np.abs(want).max(), 1e-12)
        assert err <= tol, (name, err, tol)
        worst = max(worst, err)
    assert deltas and all(n in mt for n in deltas), sorted(deltas)
    print(json.dumps({"ok": True, "tensors": len(mt), "merged": len(deltas), "types": types,
                      "worst_relative_error": worst, "arch": arch}))


if __name__ == "__main__":
    main()
