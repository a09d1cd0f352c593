"""Checks a GGUF LoRA adapter written by `tuna export --gguf` with the `gguf` package (llama.cpp's
own Python reader), against the PEFT adapter it came from.

    python3 scripts/check_gguf_adapter.py ADAPTER.gguf PEFT_DIR N_HEAD N_KV_HEAD ARCH

Checks the metadata llama.cpp reads (general.type, adapter.type, adapter.lora.alpha, the
architecture), that every PEFT LoRA pair is there under llama.cpp's tensor name with ggml's
dimension order, and that the values are PEFT's, with llama.cpp's Q/K row permutation applied to
B for the llama architecture (implemented here independently, as llama.cpp's converter does).
Prints one JSON line; exits non-zero on the first mismatch.
"""
import json
import struct
import sys

import numpy as np
from gguf import GGUFReader

MODULES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"])
    return out


def permute(w, n_head):
    # llama.cpp's convert_hf_to_gguf.py: LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(reader, key):
    f = reader.fields[key]
    part = f.parts[f.data[0]]
    if f.types[0].name == "STRING":
        return bytes(part).decode()
    return part[0].item()


def main():
    path, peft_dir, n_head, n_kv, arch = sys.argv[1:6]
    n_head, n_kv = int(n_head), int(n_kv)
    reader = GGUFReader(path)
    cfg = json.load(open(f"{peft_dir}/adapter_config.json"))
    assert field(reader, "general.type") == "adapter"
    assert field(reader, "adapter.type") == "lora"
    assert field(reader, "general.architecture") == arch
    alpha = field(reader, "adapter.lora.alpha")
    assert abs(alpha - cfg["lora_alpha"]) < 1e-6, (alpha, cfg["lora_alpha"])
    tensors = {t.name: t for t in reader.tensors}
    peft = read_safetensors(f"{peft_dir}/adapter_model.safetensors")
    pairs = 0
    for key, a in sorted(peft.items()):
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")]
        b = peft[key.replace("lora_A", "lora_B")]
        layer, rest = module[len("model.layers."):].split(".", 1)
        name = f"blk.{layer}.{MODULES[rest]}.weight"
        ga, gb = tensors[f"{name}.lora_a"], tensors[f"{name}.lora_b"]
        # ggml lists dimensions innermost first: A (r x in) is [in, r].
        assert list(ga.shape) == [a.shape[1], a.shape[0]], (name, ga.shape, a.shape)
        assert list(gb.shape) == [b.shape[1], b.shape[0]], (name, gb.shape, b.shape)
        want_b = b
        if arch == "llama" and rest == "self_attn.q_proj":
            want_b = permute(b, n_head)
        elif arch == "llama" and rest == "self_attn.k_proj":
            want_b = permute(b, n_kv)
        np.testing.assert_array_equal(np.asarray(ga.data).reshape(a.shape), a)
        np.testing.assert_array_equal(np.asarray(gb.data).reshape(b.shape), want_b)
        pairs += 1
    assert pairs > 0 and len(tensors) == 2 * pairs, (pairs, len(tensors))
    print(json.dumps({"ok": True, "pairs": pairs, "alpha": alpha, "arch": arch}))


if __name__ == "__main__":
    main()
