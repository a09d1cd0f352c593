"""PyTorch reference for the decoder rows of the training-speed table: seconds per LoRA step.

The same steps as crates/tuna-rlhf/examples/lm_step_time.rs, with transformers + PEFT on the same
GGUF file (transformers dequantises it to f32): LoRA r 8, alpha 16, dropout 0.1 on q_proj and
v_proj; AdamW (lr 1e-4, weight decay 0.01), gradient clipping at norm 1.
- sft: a batch of random token sequences, the first quarter the prompt (labels -100), the loss
  transformers' mean cross-entropy over the other tokens;
- dpo: a batch of pairs (a shared prompt, two random responses) run as one forward of chosen and
  rejected together, as TRL does, the DPO sigmoid loss (beta 0.1) on summed response
  log-probabilities against the reference's, scored once before timing.
After warm-up steps it times N steps and prints one JSON line with the median and the peak RSS.

Usage (from the repository root):

    /path/to/venv/bin/python bench/reference/lm_step_time.py --model models/smollm2.gguf --stage sft
"""
import argparse
import json
import os
import resource
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def load(path):
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path),
        torch_dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["q_proj", "v_proj"])
    return get_peft_model(model, cfg)


def response_logp(model, ids, prompt_len):
    """(B,) summed log-probability of the tokens after the prompt."""
    logits = model(input_ids=ids).logits[:, prompt_len - 1:-1, :]
    lp = torch.log_softmax(logits.float(), dim=-1)
    return lp.gather(-1, ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1).sum(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/smollm2.gguf")
    ap.add_argument("--stage", choices=["sft", "dpo"], required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = load(a.model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
    b, t, p = a.batch_size, a.seq_len, a.seq_len // 4
    prompt = torch.randint(100, 40100, (b, p))
    chosen = torch.cat([prompt, torch.randint(100, 40100, (b, t - p))], 1)
    rejected = torch.cat([prompt, torch.randint(100, 40100, (b, t - p))], 1)
    if a.stage == "dpo":
        model.eval()
        with torch.no_grad():
            ref = response_logp(model, torch.cat([chosen, rejected]), p)
        ref_margin = ref[:b] - ref[b:]
    model.train()

    def loss_of():
        if a.stage == "sft":
            labels = chosen.clone()
            labels[:, :p] = -100
            return model(input_ids=chosen, labels=labels).loss
        s = response_logp(model, torch.cat([chosen, rejected]), p)
        return -F.logsigmoid(0.1 * ((s[:b] - s[b:]) - ref_margin)).mean()

    def step():
        loss = loss_of()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"stage": a.stage, "median_step_s": round(statistics.median(times), 4),
                      "steps": a.steps, "threads": a.threads, "batch_size": b, "seq_len": t,
                      "trainable_params": sum(x.numel() for x in trainable),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
