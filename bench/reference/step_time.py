"""PyTorch reference for the training-speed row of the performance table: seconds per training step.

One step is forward + backward + gradient clipping (norm 1) + AdamW update of the same sentence
classifier that bench/reference/train_reference.py trains (mean pooling, dropout, linear head,
cross-entropy), on a fixed batch of random token ids in [1000, 30000) with an all-ones attention mask.
After a few warm-up steps it times N steps and prints one JSON line with the median.

Usage (from the repository root):

    /path/to/venv/bin/python bench/reference/step_time.py --model models/minilm --method lora --threads 2

--method full trains every weight; --method lora trains LoRA (r 8, alpha 16, dropout 0.1, on query and
value, via PEFT) and the head. The learning rate is 1e-4 for both.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/minilm")
    ap.add_argument("--method", choices=["full", "lora"], required=True)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    model = ref.build_model(a.method, a.model, 2, tokenizer)
    model.train()
    optimizer = ref.make_optimizer(model, a.lr)
    trainable = [p for p in model.parameters() if p.requires_grad]

    ids = torch.randint(1000, 30000, (a.batch_size, a.seq_len))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (a.batch_size,))

    def step():
        loss = F.cross_entropy(model(ids, mask), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, ref.COMMON["clip_norm"])
        optimizer.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)

    print(json.dumps({"method": a.method, "median_step_s": round(statistics.median(times), 4),
                      "steps": a.steps, "threads": a.threads, "batch_size": a.batch_size,
                      "seq_len": a.seq_len, "trainable_params": sum(p.numel() for p in trainable),
                      "torch": torch.__version__,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
