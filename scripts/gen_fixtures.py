#!/usr/bin/env python3
"""Generate golden parity fixtures for tuna's Rust model-loading tests.

tuna loads real Hugging Face models without Python. Its tests in
crates/tuna-models/tests/ compare against the reference implementations
(transformers / sentence-transformers) through small JSON files written by
this script. The script is run by hand; its outputs are committed.

Writes (into --out, default crates/tuna-models/tests/fixtures/):
  minilm_embeddings.json  all-MiniLM-L6-v2: token ids (no padding) and
                          sentence embeddings from SentenceTransformer.encode.
  smollm2_logits.json     SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to f32
                          by transformers): ids, per-position logsumexp,
                          argmax and logits at a fixed column set.
  smollm2_tokens.json     ids of the GGUF-built tokenizer for a few strings,
                          chat-template example, GGUF pre-tokenizer metadata.
  smollm2_perplexity.json perplexity of a fixed paragraph.
  smollm2_scores.json     log-likelihoods of label continuations after k-shot prompts.
  smollm2_generate.json   greedy generations (ids) of `generate`, with and without
                          the chat template, and a rendered multi-turn chat prompt.
Also dumps all GGUF metadata and tensor types to /tmp/smollm2_gguf_meta.txt
(not committed; for reference only).

Every file carries "generated_by" with the package versions used.
Floats are rounded to 7 significant digits.

How to run (from the repo root; models come from scripts/fetch_models.sh):
    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch transformers sentence-transformers gguf
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \\
        /tmp/refvenv/bin/python scripts/gen_fixtures.py [--models DIR] [--out DIR]
"""
import argparse
import json
import math
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gguf  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GGUF_NAME = "smollm2.gguf"

MINILM_SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "sipping his coffee and wondering whether the rain will come before the harvest is in. "
    "Meanwhile, in the village, children run between the market stalls, laughing at the "
    "jugglers, and the baker sells the last loaves of bread to a tired traveller who has "
    "walked all night from the distant mountains.",
    "Wait... what?! Is this (really) the end; or -- perhaps -- just the beginning?",
    "Café Zürich naïve façade, Ελληνικά and 日本語 text.",
    "In 2024 there were 1234 cats and 3.14159 pies.",
    "Supercalifragilisticexpialidocious",
    "ThIs SeNtEnCe HaS mIxEd CaSe AND SHOUTING.",
    "I love pizza 🍕 and sunshine ☀️!",
]

LOGITS_TEXT = "The old lighthouse keeper climbed the narrow stairs every evening to light the great lamp above the sea."

TOKEN_STRINGS = [
    "The quick brown fox jumps over the lazy dog.",
    "   leading spaces and  double  spaces",
    "<|im_start|>user\nHello<|im_end|>",
    "In 2024 there were 1234 cats",
    "Café Zürich naïve — 日本語 🍕",
]
DIGIT_STRING = "In 2024 there were 1234 cats"

PERPLEXITY_TEXT = (
    "The honeybee is a social insect that lives in large colonies ruled by a single queen. "
    "Worker bees, which are sterile females, gather nectar and pollen from flowers, build the "
    "wax comb, feed the young, and defend the hive against intruders. Male bees, called drones, "
    "have the sole task of mating with a queen from another colony. Honeybees communicate the "
    "location of food through a series of movements known as the waggle dance, in which the "
    "angle and length of the dance indicate the direction and distance of the flowers. Because "
    "they pollinate many crops and wild plants, honeybees play an important role in agriculture "
    "and in the health of natural ecosystems. In recent decades, beekeepers in many regions have "
    "reported heavy losses of colonies, which scientists link to parasites, disease, pesticides "
    "and the loss of flowering habitat."
)


def r7(x):
    """Round a float (or nested list of floats) to 7 significant digits."""
    if isinstance(x, (list, tuple)):
        return [r7(v) for v in x]
    return float(f"{float(x):.7g}")


def versions():
    pkgs = ["torch", "transformers", "sentence-transformers", "tokenizers", "gguf", "numpy"]
    out = {"python": platform.python_version(), **{p.replace("-", "_"): version(p) for p in pkgs}}
    out["torch"] = torch.__version__  # keeps the build tag, e.g. +cpu / +cu132
    return out


def write(out_dir, name, obj):
    path = out_dir / name
    path.write_text(json.dumps({"generated_by": versions(), **obj}, ensure_ascii=False) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def gen_minilm(models, out):
    d = models / "minilm"
    modules = json.loads((d / "modules.json").read_text())
    normalized = any(m["type"].endswith("Normalize") for m in modules)
    model = SentenceTransformer(str(d), device="cpu")
    # One sentence at a time, so no padding; same truncation as encode().
    prep = getattr(model, "preprocess", None) or model.tokenize  # tokenize() before ST v6
    ids = [prep([s])["input_ids"][0].tolist() for s in MINILM_SENTENCES]
    emb = model.encode(MINILM_SENTENCES, normalize_embeddings=False, convert_to_numpy=True)
    write(out, "minilm_embeddings.json", {
        "model": "all-MiniLM-L6-v2",
        "pipeline": [m["type"].rsplit(".", 1)[-1] for m in modules],
        "normalized": normalized,
        "note": "embeddings = SentenceTransformer.encode(normalize_embeddings=False); "
                "modules.json contains a Normalize module, so outputs are already unit-L2"
                if normalized else "modules.json has no Normalize module; outputs are raw",
        "max_seq_length": model.max_seq_length,
        "sentences": MINILM_SENTENCES,
        "input_ids": ids,
        "embeddings": [r7(e.tolist()) for e in emb],
    })


def load_smollm2(models):
    tok = AutoTokenizer.from_pretrained(str(models), gguf_file=GGUF_NAME)
    # transformers dequantises every GGUF tensor to f32 and un-permutes Q/K.
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(
        str(models), gguf_file=GGUF_NAME, **{dtype_kw: torch.float32})
    model.eval()
    return tok, model


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()  # [T, vocab] f32


def gen_logits(tok, model, out):
    ids = tok(LOGITS_TEXT)["input_ids"]
    bos = tok.bos_token_id
    logits = logits_of(model, ids)
    vocab = logits.shape[1]
    l64 = logits.double()
    lse = torch.logsumexp(l64, dim=-1)
    spread = list(range(0, vocab, vocab // 150))[:150]
    top5 = logits.topk(5, dim=-1).indices.flatten().tolist()
    columns = sorted(set(spread) | set(top5))
    c = model.config
    write(out, "smollm2_logits.json", {
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to f32 by transformers)",
        "text": LOGITS_TEXT,
        "ids": ids,
        "bos_added": bool(ids and ids[0] == bos),
        "vocab_size": vocab,
        "config": {
            "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads,
            "rope_theta": getattr(c, "rope_theta", None)
            or (getattr(c, "rope_parameters", None) or {}).get("rope_theta"),
            "rms_norm_eps": c.rms_norm_eps,
            "tie_word_embeddings": c.tie_word_embeddings,
            "intermediate_size": c.intermediate_size,
            "max_position_embeddings": c.max_position_embeddings,
            "bos_token_id": c.bos_token_id,
            "eos_token_id": c.eos_token_id,
            "pad_token_id": c.pad_token_id,
            "vocab_size": c.vocab_size,
        },
        "logsumexp": r7(lse.tolist()),
        "argmax": logits.argmax(dim=-1).tolist(),
        "columns": columns,
        "logits": [r7(row) for row in logits[:, columns].tolist()],
    })


def gguf_field_value(field):
    """Decode a GGUFReader field: scalars/strings as values, arrays as lists."""
    from gguf import GGUFValueType as T
    vt = field.types[0]
    def dec(part):
        return bytes(part).decode("utf-8", errors="replace")
    if vt == T.STRING:
        return dec(field.parts[field.data[0]])
    if vt == T.ARRAY:
        et = field.types[-1]
        items = [field.parts[i] for i in field.data]
        return [dec(p) if et == T.STRING else p.tolist()[0] for p in items]
    return field.parts[field.data[0]].tolist()[0]


def gguf_metadata(models):
    reader = gguf.GGUFReader(str(models / GGUF_NAME))
    meta = {k: gguf_field_value(f) for k, f in reader.fields.items()}
    lines = []
    for k, v in meta.items():
        if isinstance(v, list):
            lines.append(f"{k} = array[{len(v)}] first5={v[:5]!r}")
        else:
            lines.append(f"{k} = {v!r}")
    types = meta.get("tokenizer.ggml.token_type")
    tokens = meta.get("tokenizer.ggml.tokens")
    if types and tokens:
        lines.append("# token_type of non-normal (type != 1) tokens:")
        lines += [f"  {i} {tokens[i]!r} type={t}" for i, t in enumerate(types) if t != 1][:60]
    lines.append("# tensors (name, ggml type, shape):")
    names = [t.name for t in reader.tensors]
    lines += [f"  {t.name} {t.tensor_type.name} {[int(n) for n in t.shape]}"
              for t in reader.tensors]
    lines.append(f"# output.weight present: {'output.weight' in names}")
    Path("/tmp/smollm2_gguf_meta.txt").write_text("\n".join(lines) + "\n")
    print("wrote /tmp/smollm2_gguf_meta.txt")
    return meta


def gen_tokens(tok, meta, out):
    enc = {s: tok(s, add_special_tokens=False)["input_ids"] for s in TOKEN_STRINGS}
    digit_pieces = tok.convert_ids_to_tokens(enc[DIGIT_STRING])
    digit_tokens = [p for p in digit_pieces if any(ch.isdigit() for ch in p)]
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    merges = meta.get("tokenizer.ggml.merges") or []
    types = meta.get("tokenizer.ggml.token_type") or []
    write(out, "smollm2_tokens.json", {
        "pre_tokenizer": meta.get("tokenizer.ggml.pre"),
        "tokenizer_model": meta.get("tokenizer.ggml.model"),
        "gguf_add_bos_token": meta.get("tokenizer.ggml.add_bos_token"),
        "gguf_special_ids": {k: meta.get(f"tokenizer.ggml.{k}_token_id")
                             for k in ("bos", "eos", "unknown", "padding")},
        "gguf_token_type_of_first_ids": types[:17],
        "transformers_pre_tokenizer": str(tok.backend_tokenizer.pre_tokenizer),
        "merges_with_digits": sum(any(ch.isdigit() for ch in m) for m in merges),
        "add_special_tokens": False,
        "cases": [{"text": s, "ids": ids, "pieces": tok.convert_ids_to_tokens(ids)}
                  for s, ids in enc.items()],
        "digit_string": DIGIT_STRING,
        "digit_pieces": digit_tokens,
        "digits_split_individually": all(
            sum(ch.isdigit() for ch in p) <= 1 for p in digit_tokens),
        "digits_note": "transformers builds the GGUF tokenizer with a plain ByteLevel "
                       "(GPT-2 regex) pre-tokenizer, no Digits split as in llama.cpp 'smollm'; "
                       "digits still come out one per token because no BPE merge contains a "
                       "digit (see merges_with_digits)",
        "chat_example": chat,
        "chat_example_ids": tok(chat, add_special_tokens=False)["input_ids"],
    })


def gen_perplexity(tok, model, out):
    ids = tok(PERPLEXITY_TEXT)["input_ids"]
    logp = torch.log_softmax(logits_of(model, ids).double(), dim=-1)
    target = torch.tensor(ids[1:])
    nll = -logp[:-1].gather(1, target[:, None])[:, 0]
    mean_nll = nll.mean().item()
    write(out, "smollm2_perplexity.json", {
        "text": PERPLEXITY_TEXT,
        "ids": ids,
        "bos_added": bool(ids and ids[0] == tok.bos_token_id),
        "n_predicted": len(ids) - 1,
        "mean_nll": r7(mean_nll),
        "perplexity": r7(math.exp(mean_nll)),
        "note": "exp(mean NLL of ids[1:] given prefixes), float64 from float32 logits",
    })
    print(f"perplexity {math.exp(mean_nll):.4f} over {len(ids) - 1} tokens")


GENERATE_PROMPTS = ["The capital of France is", "def fibonacci(n):"]
CHAT = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name a primary colour."},
    {"role": "assistant", "content": "Red."},
    {"role": "user", "content": "Another one?"},
]


def gen_generation(tok, model, out):
    def greedy(ids, n=24):
        with torch.no_grad():
            g = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                               max_new_tokens=n, do_sample=False, eos_token_id=None,
                               pad_token_id=tok.pad_token_id)
        return g[0, len(ids):].tolist()

    cases = [{"prompt": p, "ids": tok(p)["input_ids"]} for p in GENERATE_PROMPTS]
    rendered = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    cases.append({"chat": CHAT, "prompt": rendered,
                  "ids": tok(rendered, add_special_tokens=False)["input_ids"]})
    for c in cases:
        c["greedy"] = greedy(c["ids"])
        c["greedy_text"] = tok.decode(c["greedy"])
    write(out, "smollm2_generate.json", {"max_new_tokens": 24, "cases": cases})


SCORE_PROMPTS = [
    "Review: a gorgeous, witty, seductive movie.\nSentiment:",
    "Review: the plot is nothing but boilerplate cliches.\nSentiment: negative\n\n"
    "Review: an exhilarating, moving film.\nSentiment: positive\n\nReview: it's a dull, lifeless mess.\nSentiment:",
]


def gen_scores(tok, model, out):
    cases = []
    for p in SCORE_PROMPTS:
        ctx = tok(p)["input_ids"]
        for cont in [" negative", " positive"]:
            cids = tok(cont, add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(logits_of(model, ctx + cids).double(), dim=-1)
            total = sum(logp[len(ctx) - 1 + j, t].item() for j, t in enumerate(cids))
            cases.append({"context": ctx, "continuation": cids, "text": p + cont, "logprob": total})
    write(out, "smollm2_scores.json", {"cases": cases})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=ROOT / "crates/tuna-models/tests/fixtures")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    gen_minilm(args.models, args.out)
    meta = gguf_metadata(args.models)
    tok, model = load_smollm2(args.models)
    gen_logits(tok, model, args.out)
    gen_tokens(tok, meta, args.out)
    gen_perplexity(tok, model, args.out)
    gen_generation(tok, model, args.out)
    gen_scores(tok, model, args.out)


if __name__ == "__main__":
    sys.exit(main())
