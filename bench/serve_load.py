#!/usr/bin/env python3
"""Load test of `tuna serve` (Python standard library only).

Sends greedy completions (EOS ignored, `--max-tokens` tokens each) from concurrent clients,
each request to the next of the served names in turn (the base, then each adapter: mixed
adapters), and reports per concurrency level the aggregate decode throughput (completion
tokens / wall time), requests/s and the p50/p99 latency; the throughput relative to one client.

    # start the server itself (release binary, loopback, any free port), pinned to CPU 1:
    python3 bench/serve_load.py --start --model models/smollm2.gguf \
        --adapter a=runs/sft-a --adapter b=runs/sft-b --taskset 1 --threads 1
    # or against a running server, its names given:
    python3 bench/serve_load.py --url http://127.0.0.1:8000 --models smol,smol:a,smol:b

--long SECONDS then runs 8 clients for that long and reports failed requests (must be 0);
--overload starts a second server with a small queue and batch (or uses --url) and sends more
requests at once than it holds: each must be answered 200 or 429, never anything else.
Every level is bounded: `--per-client` requests per client (at least 8 in all) and `--cap`
seconds.
"""

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator keeps food cold.",
    "List five uses for a paper clip.",
    "What is the capital of France, and why is it famous?",
    "Give me a recipe for pancakes.",
    "Describe the water cycle to a ten year old.",
    "Why is the sky blue?",
    "Summarise the plot of a detective novel in three sentences.",
]


def post(url, path, body, timeout=600):
    """POSTs JSON; the status and the parsed body (None when it is not JSON)."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, None
    finally:
        conn.close()


def one_request(url, model, i, max_tokens):
    """One greedy completion: (status, completion tokens, seconds)."""
    body = {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens,
            "temperature": 0, "ignore_eos": True}
    t = time.perf_counter()
    try:
        status, j = post(url, "/v1/completions", body)
    except OSError as e:
        print(f"request {i} ({model}): {e}", file=sys.stderr)
        return 0, 0, time.perf_counter() - t
    tokens = j["usage"]["completion_tokens"] if status == 200 and j else 0
    return status, tokens, time.perf_counter() - t


def run_level(url, models, clients, total, cap, max_tokens):
    """`clients` clients send `total` requests in all (or until `cap` seconds); the results."""
    results, lock, next_i = [], threading.Lock(), [0]
    deadline = time.perf_counter() + cap

    def client():
        while time.perf_counter() < deadline:
            with lock:
                i = next_i[0]
                if i >= total:
                    return
                next_i[0] += 1
            r = one_request(url, models[i % len(models)], i, max_tokens)
            with lock:
                results.append(r)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [r for r in results if r[0] == 200]
    lat = sorted(r[2] for r in ok) or [0.0]
    tokens = sum(r[1] for r in ok)
    return {
        "clients": clients, "requests": len(results), "failed": len(results) - len(ok),
        "statuses": sorted({r[0] for r in results}), "wall_s": round(wall, 2),
        "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
        "requests_per_s": round(len(ok) / wall, 2),
        "p50_s": round(statistics.median(lat), 2),
        "p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2),
    }


def start_server(args, extra):
    """Starts `tuna serve` on 127.0.0.1 (any free port); the process and its URL."""
    cmd = [args.tuna, "serve", "--model", args.model, "--name", "base", "--host", "127.0.0.1",
           "--port", "0", "--threads", str(args.threads)] + extra
    for a in args.adapter:
        cmd += ["--adapter", a]
    if args.taskset:
        cmd = ["taskset", "-c", args.taskset] + cmd
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("listening on "):
            url = line.split()[-1]
            threading.Thread(target=p.stdout.read, daemon=True).start()
            return p, url
    raise SystemExit(f"tuna serve exited ({p.wait()}) without listening")


def same_in_a_batch(url, models, n, max_tokens):
    """`n` greedy requests (mixed models) alone, then all at once: how many got the same tokens."""
    def ids(i):
        body = {"model": models[i % len(models)], "prompt": PROMPTS[i % len(PROMPTS)],
                "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                "return_token_ids": True}
        status, j = post(url, "/v1/completions", body)
        return j["choices"][0]["token_ids"] if status == 200 else None

    alone = [ids(i) for i in range(n)]
    together = [None] * n

    def go(i):
        together[i] = ids(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = [next((k for k, (a, b) in enumerate(zip(x, y)) if a != b), None)
             for x, y in zip(alone, together)]
    return {"requests": n, "same": sum(f is None for f in first),
            "first_difference_at": [f for f in first if f is not None]}


def overload(url, models, n, max_tokens):
    """`n` requests at once: the number answered 200, 429 and anything else."""
    out, lock = [], threading.Lock()

    def go(i):
        r = one_request(url, models[i % len(models)], i, max_tokens)
        with lock:
            out.append(r[0])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other = [s for s in out if s not in (200, 429)]
    return {"sent": n, "ok": out.count(200), "busy_429": out.count(429), "other": len(other),
            "other_statuses": sorted(set(other))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running server (else --start)")
    ap.add_argument("--models", default="", help="served names to mix, comma-separated (--url)")
    ap.add_argument("--start", action="store_true", help="start target/release/tuna serve")
    ap.add_argument("--tuna", default="target/release/tuna")
    ap.add_argument("--model", default="models/smollm2.gguf")
    ap.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads")
    ap.add_argument("--taskset", default="", help="CPUs to pin the server to, e.g. 1")
    ap.add_argument("--max-batch", type=int, default=32, help="the server's --max-batch")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--per-client", type=int, default=4, help="requests per client per level")
    ap.add_argument("--cap", type=float, default=120, help="seconds per level at most")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--long", type=float, default=0, help="then 8 clients for this many s")
    ap.add_argument("--overload", action="store_true", help="then the 429 check")
    ap.add_argument("--check", type=int, default=0,
                    help="first compare N greedy answers alone and decoded together")
    args = ap.parse_args()

    procs = []
    if args.start:
        p, url = start_server(args, ["--max-batch", str(args.max_batch), "--queue", "64"])
        procs.append(p)
        models = ["base"] + ["base:" + a.split("=", 1)[0] for a in args.adapter]
    elif args.url:
        url, models = args.url, [m for m in args.models.split(",") if m]
        if not models:
            raise SystemExit("--url needs --models")
    else:
        raise SystemExit("give --url URL --models A,B or --start")
    try:
        print(f"server {url}; models {models}; {args.max_tokens} tokens per request", flush=True)
        one_request(url, models[0], 0, 4)  # warm-up
        if args.check:
            r = same_in_a_batch(url, models, args.check, args.max_tokens)
            r["mode"] = "same_alone_and_together"
            print(json.dumps(r), flush=True)
        base = None
        for c in map(int, args.clients.split(",")):
            r = run_level(url, models, c, max(8, c * args.per_client), args.cap, args.max_tokens)
            base = base or r["tokens_per_s"]
            r["vs_one_client"] = round(r["tokens_per_s"] / base, 2) if base else None
            print(json.dumps(r), flush=True)
        if args.long:
            r = run_level(url, models, 8, 10**9, args.long, args.max_tokens)
            r["mode"] = "long"
            print(json.dumps(r), flush=True)
        if args.overload:
            target = url
            if args.start:
                p, target = start_server(args, ["--max-batch", "4", "--queue", "4"])
                procs.append(p)
            r = overload(target, models, 48, args.max_tokens)
            r["mode"] = "overload"
            print(json.dumps(r), flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
