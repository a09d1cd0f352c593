"""PyTorch reference for tuna's fine-tuning methods on a text-classification task.

Trains a sentence classifier (mean-pooled encoder + dropout + linear head) with each of the methods tuna
offers -- head, last-2, full, lora, dora, ia3, adapter, prefix, prompt -- under one common recipe,
keeps the epoch with the best validation accuracy and reports its test accuracy, the trainable
parameter count, the training time and the peak resident memory. Each method runs in a fresh
subprocess of this script, so the peak RSS (getrusage maxrss, which is per process) belongs to that
method alone.

Usage (from the repository root):

    /path/to/venv/bin/python bench/reference/train_reference.py --model models/minilm \
        --train ../shared/data/sst2/stsa.binary.train --val ../shared/data/sst2/stsa.binary.dev \
        --test ../shared/data/sst2/stsa.binary.test --methods head,lora --out results.json

Data files hold one example per line, `label text` (label first, then a space, then the text).
Add `--limit 64 --epochs 1` for a smoke test. `--save-lora DIR` writes the trained LoRA adapter in
PEFT format (`adapter_config.json`, `adapter_model.safetensors`) plus the classifier head
(`head.safetensors`, keys `weight` and `bias`) when the lora method runs.

Which library does what (transformers 5.x, peft 0.21):
- lora, dora, ia3, prefix and prompt use PEFT (LoraConfig, LoraConfig with use_dora=True, IA3Config,
  PrefixTuningConfig, PromptTuningConfig with task_type FEATURE_EXTRACTION). dora is lora's settings
  with a trained magnitude per output row; PEFT treats the row norm of W + (alpha/r) B A as a constant
  in the backward pass (DoRA paper, section 4.3). ia3 uses PEFT's BERT defaults: vectors on key,
  value and every `output.dense`, initialised to ones; "output.dense" also matches
  attention.output.dense by suffix, so both output projections are feed-forward modules (their
  vector scales the layer's input) while key and value scale their outputs. PEFT's prefix tuning
  hands BertModel its prefixes as a DynamicCache; BertModel 5.x prepends them to every layer's keys
  and values, visible to every token, and starts the real tokens' positions after the 20 prefix
  positions. The prompt starts from the token embeddings of PROMPT_INIT_TEXT tokenized WITHOUT special
  tokens, repeated/truncated to the prompt length; PEFT's own PromptTuningInit.TEXT tokenizes with
  special tokens ([CLS] ... [SEP] for BERT), so the prompt is created with random init and then
  overwritten with those embeddings.
- adapter is written by hand below (BottleneckAdapter / AdaptedLinear): the `adapters` package
  (AdapterHub, DoubleSeqBnConfig) requires transformers ~=4.57 and does not run on transformers 5.x.
  Given the same weights, the hand-written module gives the same outputs as
  DoubleSeqBnConfig(reduction_factor=hidden/64, non_linearity="relu") on BERT: an adapter on the
  attention output projection and one on the feed-forward output projection, each before the block's
  residual add and LayerNorm. (Its initialisation differs from adapters' "mam_adapter" init only in
  the down projection's bias, which keeps nn.Linear's default init here instead of zero.)
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# BertModel 5.x renamed `past_key_values` to `cache`; PEFT still passes the old name.
warnings.filterwarnings("ignore", category=FutureWarning)

ALL_METHODS = ["head", "last-2", "full", "lora", "dora", "ia3", "adapter", "prefix", "prompt"]

# Per-method settings: tuna's defaults.
METHODS = {
    # Optional per method: "head_hidden" (a hidden layer in the head, as tuna's --head-hidden),
    # "pooling" ("mean" or "attention", as tuna's --pooling) and "epochs" (instead of --epochs).
    # tuna's `head` pools with a learned attention score on a frozen backbone; it runs 3 epochs in
    # the SST-2 comparison (tuna trains it on cached states, so its epochs cost seconds).
    "head": {"lr": 2e-3, "pooling": "attention", "epochs": 3},
    "last-2": {"lr": 1e-4, "train_last_blocks": 2},
    "full": {"lr": 5e-5},
    "lora": {"lr": 5e-4, "r": 8, "alpha": 16, "dropout": 0.1, "targets": ["query", "value"]},
    "dora": {"lr": 5e-4, "r": 8, "alpha": 16, "dropout": 0.1, "targets": ["query", "value"],
             "use_dora": True},
    # ia3's lr: probes on the first 2,000 SST-2 training sentences, 1 epoch, gave validation accuracy
    # 81.54% at 3e-3, 83.37% at 1e-2 and 80.96% at 3e-2.
    "ia3": {"lr": 1e-2, "targets": ["key", "value", "output.dense"], "feedforward": ["output.dense"]},
    "adapter": {"lr": 1e-3, "bottleneck": 64},
    "prefix": {"lr": 2e-4, "virtual_tokens": 20, "projection": 512},
    "prompt": {"lr": 3e-2, "virtual_tokens": 20},
}

# Settings shared by every method.
COMMON = {
    "head_dropout": 0.1,
    "head_init_std": 0.02,
    "weight_decay": 0.01,  # on weight matrices; 0 on biases, LayerNorm weights, prompt/prefix embeddings,
    #                        IA3 vectors (`ia3_l`) and DoRA magnitudes (`lora_magnitude_vector`)
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "warmup_fraction": 0.1,  # warmup steps = ceil(0.1 * total steps), then linear decay to 0
    "clip_norm": 1.0,
}

PROMPT_INIT_TEXT = "Classify the sentiment of this movie review as positive or negative:"


# ----------------------------------------------------------------------------------------------- data

def read_examples(path, limit=None):
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            label, text = line.split(" ", 1)
            labels.append(int(label))
            texts.append(text)
            if limit is not None and len(texts) >= limit:
                break
    return texts, labels


class Encoded:
    """Token ids of a split (unpadded, truncated to max_len) and their labels."""

    def __init__(self, tokenizer, texts, labels, max_len):
        self.ids = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.pad_id = tokenizer.pad_token_id

    def __len__(self):
        return len(self.ids)

    def batch(self, index):
        rows = [self.ids[i] for i in index]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask, self.labels[index]


# ---------------------------------------------------------------------------------------------- model

class Classifier(nn.Module):
    """encoder -> pooling of the last hidden states over real tokens (mean, or attention: softmax
    over the tokens of h . w with a trained w) -> Dropout -> [Linear -> ReLU -> Dropout ->] Linear."""

    def __init__(self, encoder, hidden, num_classes, skip_tokens=0, head_hidden=0, pooling="mean"):
        super().__init__()
        self.encoder = encoder
        self.skip_tokens = skip_tokens  # virtual tokens at the front of the output (prompt tuning)
        self.pool = None
        if pooling == "attention":
            # tuna's `classifier_pool.weight` (1, H): N(0, 0.02), so the start is near the mean.
            self.pool = nn.Parameter(torch.empty(1, hidden))
            nn.init.normal_(self.pool, mean=0.0, std=COMMON["head_init_std"])
        self.dropout = nn.Dropout(COMMON["head_dropout"])
        self.hidden = None
        if head_hidden:
            self.hidden = nn.Linear(hidden, head_hidden)
            nn.init.normal_(self.hidden.weight, mean=0.0, std=COMMON["head_init_std"])
            nn.init.zeros_(self.hidden.bias)
            hidden = head_hidden
        self.head = nn.Linear(hidden, num_classes)
        nn.init.normal_(self.head.weight, mean=0.0, std=COMMON["head_init_std"])
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden[:, self.skip_tokens:]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pool is not None:
            scores = (hidden * self.pool).sum(-1) + (attention_mask.to(hidden.dtype) - 1.0) * 1e9
            pooled = (scores.softmax(-1).unsqueeze(-1) * hidden).sum(1)
        else:
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        x = self.dropout(pooled)
        if self.hidden is not None:
            x = self.dropout(torch.relu(self.hidden(x)))
        return self.head(x)


class BottleneckAdapter(nn.Module):
    """a(h) = h + up(relu(down(h))); up starts at zero, so the adapter starts as the identity."""

    def __init__(self, hidden, bottleneck):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)  # nn.Linear's default init
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(torch.relu(self.down(h)))


class AdaptedLinear(nn.Module):
    """A (frozen) Linear followed by a bottleneck adapter on its output."""

    def __init__(self, linear, bottleneck):
        super().__init__()
        self.linear = linear
        self.adapter = BottleneckAdapter(linear.out_features, bottleneck)

    def forward(self, x):
        return self.adapter(self.linear(x))


def add_houlsby_adapters(bert, bottleneck):
    """Adapters after the attention output projection and after the feed-forward output projection of
    every block. Both projections feed dropout (p=0 here) and then LayerNorm(x + residual), so the
    adapter sits before the residual add and LayerNorm."""
    for layer in bert.encoder.layer:
        layer.attention.output.dense = AdaptedLinear(layer.attention.output.dense, bottleneck)
        layer.output.dense = AdaptedLinear(layer.output.dense, bottleneck)


def load_backbone(model_dir):
    from transformers import AutoModel

    # No backbone dropout; no pooler (the classifier mean-pools the last hidden states).
    return AutoModel.from_pretrained(
        model_dir,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        add_pooling_layer=False,
    )


def build_model(method, model_dir, num_classes, tokenizer):
    """The classifier for `method`, with requires_grad set on exactly the parameters that train."""
    from peft import (IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, PromptTuningInit,
                      TaskType, get_peft_model)

    cfg = METHODS[method]
    backbone = load_backbone(model_dir)
    hidden = backbone.config.hidden_size
    skip_tokens = 0

    if method == "head":
        backbone.requires_grad_(False)
        encoder = backbone
    elif method == "last-2":
        backbone.requires_grad_(False)
        for block in backbone.encoder.layer[-cfg["train_last_blocks"]:]:
            block.requires_grad_(True)
        encoder = backbone
    elif method == "full":
        encoder = backbone
    elif method in ("lora", "dora"):
        encoder = get_peft_model(backbone, LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION, r=cfg["r"], lora_alpha=cfg["alpha"],
            lora_dropout=cfg["dropout"], target_modules=cfg["targets"],
            use_dora=cfg.get("use_dora", False)))
    elif method == "ia3":
        encoder = get_peft_model(backbone, IA3Config(
            task_type=TaskType.FEATURE_EXTRACTION, target_modules=cfg["targets"],
            feedforward_modules=cfg["feedforward"]))
    elif method == "adapter":
        backbone.requires_grad_(False)
        add_houlsby_adapters(backbone, cfg["bottleneck"])
        encoder = backbone
    elif method == "prefix":
        encoder = get_peft_model(backbone, PrefixTuningConfig(
            task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=cfg["virtual_tokens"],
            prefix_projection=True, encoder_hidden_size=cfg["projection"]))
    elif method == "prompt":
        n = cfg["virtual_tokens"]
        encoder = get_peft_model(backbone, PromptTuningConfig(
            task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=n,
            prompt_tuning_init=PromptTuningInit.RANDOM))
        init_ids = tokenizer(PROMPT_INIT_TEXT, add_special_tokens=False)["input_ids"]
        init_ids = (init_ids * math.ceil(n / len(init_ids)))[:n]
        with torch.no_grad():
            words = backbone.get_input_embeddings().weight
            encoder.prompt_encoder["default"].embedding.weight.copy_(words[torch.tensor(init_ids)])
        skip_tokens = n
    else:
        raise ValueError(f"unknown method {method!r}")

    return Classifier(encoder, hidden, num_classes, skip_tokens, cfg.get("head_hidden", 0),
                      cfg.get("pooling", "mean"))


def make_optimizer(model, lr):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_prompt_embedding = "prompt_encoder" in name and name.endswith("embedding.weight")
        # IA3 vectors are [out, 1] or [1, in], so they need the name rule; DoRA magnitudes are 1-D.
        is_scale_vector = "ia3_l" in name or "lora_magnitude_vector" in name
        (no_decay if p.ndim < 2 or is_prompt_embedding or is_scale_vector else decay).append(p)
    groups = [{"params": decay, "weight_decay": COMMON["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=COMMON["betas"], eps=COMMON["eps"])


# ------------------------------------------------------------------------------------------- training

@torch.inference_mode()
def accuracy(model, data, batch_size):
    model.eval()
    by_length = sorted(range(len(data)), key=lambda i: len(data.ids[i]))  # less padding, same result
    correct = 0
    for start in range(0, len(data), batch_size):
        ids, mask, labels = data.batch(by_length[start:start + batch_size])
        correct += (model(ids, mask).argmax(-1) == labels).sum().item()
    return 100.0 * correct / len(data)


def train_one(method, args, tokenizer, train, val, test, num_classes):
    from transformers import get_linear_schedule_with_warmup

    rss_before_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.manual_seed(args.seed)
    model = build_model(method, args.model, num_classes, tokenizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    lr = args.lr if args.lr is not None else METHODS[method]["lr"]
    optimizer = make_optimizer(model, lr)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    epochs = METHODS[method].get("epochs", args.epochs)
    total_steps = epochs * steps_per_epoch
    warmup_steps = math.ceil(COMMON["warmup_fraction"] * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)

    best_val, best_epoch, best_state = -1.0, -1, None
    val_per_epoch, loss_per_epoch = [], []
    train_s = 0.0
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed + epoch))
        model.train()
        t0 = time.perf_counter()
        loss_sum = 0.0
        for start in range(0, len(train), args.batch_size):
            ids, mask, labels = train.batch(order[start:start + args.batch_size].tolist())
            loss = F.cross_entropy(model(ids, mask), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, COMMON["clip_norm"])
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item()
        train_s += time.perf_counter() - t0
        val_acc = accuracy(model, val, args.batch_size)
        val_per_epoch.append(round(val_acc, 2))
        loss_per_epoch.append(round(loss_sum / steps_per_epoch, 4))
        print(f"[{method}] epoch {epoch + 1}/{epochs}: train loss {loss_per_epoch[-1]:.4f}, "
              f"val acc {val_acc:.2f}", file=sys.stderr, flush=True)
        if val_acc > best_val:
            best_val, best_epoch = val_acc, epoch + 1
            best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in best_state.items():
            params[name].copy_(value)
    test_acc = accuracy(model, test, args.batch_size)

    if method == "lora" and args.save_lora:
        from safetensors.torch import save_file

        model.encoder.save_pretrained(args.save_lora)
        save_file({"weight": model.head.weight.detach().contiguous(), "bias": model.head.bias.detach()},
                  os.path.join(args.save_lora, "head.safetensors"))

    return {
        "method": method,
        "lr": lr,
        "test_acc": round(test_acc, 2),
        "val_acc": round(best_val, 2),
        "best_epoch": best_epoch,
        "val_acc_per_epoch": val_per_epoch,
        "train_loss_per_epoch": loss_per_epoch,
        "trainable_params": sum(p.numel() for p in trainable),
        "train_s": round(train_s, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_model_mib": round(rss_before_model, 1),  # libraries and data, no model yet
        "train_examples": len(train),
        "epochs": epochs,
        "batch_size": args.batch_size,
        "max_len": args.max_len,
        "seed": args.seed,
        "threads": args.threads,
        "torch": torch.__version__,
    }


def run_in_process(args, methods):
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()  # MiniLM's unused pooler weights are reported otherwise
    transformers.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train_texts, train_labels = read_examples(args.train, args.limit)
    val_texts, val_labels = read_examples(args.val)
    test_texts, test_labels = read_examples(args.test)
    num_classes = max(train_labels + val_labels + test_labels) + 1
    train = Encoded(tokenizer, train_texts, train_labels, args.max_len)
    val = Encoded(tokenizer, val_texts, val_labels, args.max_len)
    test = Encoded(tokenizer, test_texts, test_labels, args.max_len)
    return [train_one(m, args, tokenizer, train, val, test, num_classes) for m in methods]


def run_in_subprocesses(args, methods):
    """One fresh process per method, so each one's peak RSS is its own."""
    results = []
    for method in methods:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--train", args.train,
                   "--val", args.val, "--test", args.test, "--methods", method,
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                   "--max-len", str(args.max_len), "--seed", str(args.seed),
                   "--threads", str(args.threads), "--out", out, "--quiet"]
            if args.limit is not None:
                cmd += ["--limit", str(args.limit)]
            if args.lr is not None:
                cmd += ["--lr", str(args.lr)]
            if args.save_lora and method == "lora":
                cmd += ["--save-lora", args.save_lora]
            subprocess.run(cmd, check=True)
            with open(out, encoding="utf-8") as f:
                results.extend(json.load(f))
    return results


def markdown_table(results):
    lines = ["| method | test acc % | val acc % | best epoch | trainable params | train s | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['method']} | {r['test_acc']:.2f} | {r['val_acc']:.2f} | {r['best_epoch']} | "
                     f"{r['trainable_params']:,} | {r['train_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face model directory (BertModel checkpoint)")
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--methods", default=",".join(ALL_METHODS),
                    help="comma-separated subset of " + ",".join(ALL_METHODS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training examples")
    ap.add_argument("--lr", type=float, default=None,
                    help="learning rate for every method run, instead of each method's own (for probes)")
    ap.add_argument("--out", default="results.json")
    ap.add_argument("--save-lora", default=None, metavar="DIR",
                    help="write the trained LoRA adapter (PEFT format) and head here")
    ap.add_argument("--quiet", action="store_true", help="do not print the table (used by subprocesses)")
    args = ap.parse_args()

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {ALL_METHODS}")

    results = run_in_process(args, methods) if len(methods) == 1 else run_in_subprocesses(args, methods)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    if not args.quiet:
        print(markdown_table(results))


if __name__ == "__main__":
    main()
