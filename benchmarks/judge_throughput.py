"""Judge throughput: the served endpoint vs the engine in-process, and `expected` vs `sampled` (k=5) scoring.

    python benchmarks/judge_throughput.py                       # SmolLM2-135M (builtin:smollm2-135m)
    python benchmarks/judge_throughput.py --model builtin:tiny  # the random-init test model

One run, side by side on the same machine and the same inputs (the bundled judge seed pairs, repeated):

1. engine in-process: `judge(engine, ..., "expected")` over all pairs, the engine batching them itself
   (model.max_batch_size rows per forward pass): the best a caller in the same process can do.
2. endpoint: a private local Ray with `alma judge serve`'s applications (the same code, bearer token on),
   and --clients concurrent HTTP clients each posting single pairs to POST /v1/score; then POST /v1/rank
   with --rank-size responses per request.
3. cost per judgment in-process of `expected` (one forward pass) vs `sampled` (k generated replies parsed
   for "[[N]]"), on the same pairs.

In-process and endpoint measurements alternate (--repeats times) and medians are reported, so a slow
phase of the machine does not favour one side. Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import free_port, progress, work_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _pairs(n: int) -> list[dict[str, str]]:
    from alma.core.seeds import bundled, load_judge

    seed = load_judge(bundled("judge.jsonl"))
    rows = [{"prompt": row.prompt, "response": row.response} for row in seed]
    return [rows[i % len(rows)] for i in range(n)]


def _in_process(engine, conversations, prefix: str, mode: str, samples: int) -> float:
    """Seconds to judge every conversation in one call."""
    from alma.core.judge_modes import judge

    started = time.perf_counter()
    judge(engine, conversations, prefix, mode, samples=samples, seed=0)
    return time.perf_counter() - started


def _through_endpoint(client, route: str, bodies: list[dict], clients: int, headers: dict) -> float:
    """Seconds for `clients` threads to post every body; each answer must be a 200."""
    def post(body):
        res = client.post(route, json=body, headers=headers)
        if res.status_code != 200:
            raise RuntimeError(f"{route}: HTTP {res.status_code}: {res.text[:200]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin:smollm2-135m", help="judge checkpoint (folder or builtin:...)")
    parser.add_argument("--preset", default=None,
                        help="config preset (default: tiny for builtin:tiny, else smollm2-cpu)")
    parser.add_argument("--judgments", type=int, default=64, help="judgments per throughput measurement")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--rank-size", type=int, default=4, help="responses per /v1/rank request")
    parser.add_argument("--samples", type=int, default=5, help="k of the sampled mode")
    parser.add_argument("--cost-judgments", type=int, default=16,
                        help="judgments per expected/sampled cost measurement")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repetitions; medians are reported")
    parser.add_argument("--out", metavar="FILE", help="also write the numbers as JSON to FILE")
    args = parser.parse_args(argv)

    import httpx

    from alma.cluster.serve_judge import start_judge_http
    from alma.cluster.local import start_ray, stop_ray
    from alma.config import load_config
    from alma.core.judge_prompt import judge_messages, load_rubric
    from alma.engines.factory import EngineSettings, load_engine
    from alma.checkpoints import resolve_model

    preset = args.preset or ("tiny" if args.model == "builtin:tiny" else "smollm2-cpu")
    work = work_dir()
    port = free_port()
    cfg = load_config(preset, overrides=[f"out_dir={work}", f"judge_serve.port={port}"])
    folder = resolve_model(args.model).resolve()
    rubric, prefix = load_rubric(cfg.judge.rubric), cfg.judge.answer_prefix
    pairs = _pairs(args.judgments)
    conversations = [judge_messages(p["prompt"], p["response"], rubric) for p in pairs]
    rank_bodies = [{"prompt": pairs[i]["prompt"], "responses": [p["response"] for p in pairs[i : i + args.rank_size]]}
                   for i in range(0, len(pairs), args.rank_size)]
    token = secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {token}"}

    engine = load_engine(folder, EngineSettings.of(cfg.model))
    ctx = start_ray(work)
    try:
        start_judge_http(cfg, folder, "bench", token)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, trust_env=False,
                              limits=httpx.Limits(max_connections=args.clients))
        # Warm-up: first calls pay for lazy initialisation on both sides.
        _in_process(engine, conversations[:4], prefix, "expected", args.samples)
        _through_endpoint(client, "/v1/score", pairs[: args.clients], args.clients, headers)
        direct, scored, ranked = [], [], []
        for _ in range(args.repeats):
            direct.append(len(pairs) / _in_process(engine, conversations, prefix, "expected", args.samples))
            scored.append(len(pairs) / _through_endpoint(client, "/v1/score", pairs, args.clients, headers))
            ranked.append(len(pairs) / _through_endpoint(client, "/v1/rank", rank_bodies,
                                                         max(1, args.clients // args.rank_size), headers))
            progress(f"in-process {direct[-1]:.2f}/s, /v1/score {scored[-1]:.2f}/s, /v1/rank {ranked[-1]:.2f}/s")
        stats = client.get("/v1/stats", headers=headers).json()
        client.close()
    finally:
        stop_ray(ctx)

    cost = conversations[: args.cost_judgments]
    expected_s, sampled_s = [], []
    for _ in range(args.repeats):
        expected_s.append(_in_process(engine, cost, prefix, "expected", args.samples) / len(cost))
        sampled_s.append(_in_process(engine, cost, prefix, "sampled", args.samples) / len(cost))
        progress(f"expected {expected_s[-1] * 1000:.0f} ms, sampled {sampled_s[-1] * 1000:.0f} ms per judgment")

    direct_m, scored_m, ranked_m = (statistics.median(v) for v in (direct, scored, ranked))
    expected_m, sampled_m = statistics.median(expected_s), statistics.median(sampled_s)
    endpoint_ratio, cost_ratio = scored_m / direct_m, sampled_m / expected_m
    rows = [
        ("engine in-process, expected", direct_m),
        (f"endpoint POST /v1/score, {args.clients} clients", scored_m),
        (f"endpoint POST /v1/rank, {args.rank_size} per request", ranked_m),
        ("engine in-process, expected (cost run)", 1 / expected_m),
        (f"engine in-process, sampled k={args.samples}", 1 / sampled_m),
    ]
    print(f"judge throughput: {args.model}, {len(pairs)} judgments, engine batch {cfg.model.max_batch_size}, "
          f"endpoint batch {cfg.judge_serve.max_batch_size}, {os.cpu_count()} CPUs, medians of {args.repeats}")
    print(f"{'measurement':<44} {'judgments/s':>12} {'ms/judgment':>12}")
    for name, rate in rows:
        print(f"{name:<44} {rate:>12.2f} {1000 / rate:>12.1f}")
    print(f"endpoint batches: {stats['batches']}, requests per batch {stats['requests_per_batch']}")
    print(f"endpoint / in-process throughput: {endpoint_ratio:.2f} (target >= 0.8)")
    print(f"sampled k={args.samples} / expected cost per judgment: {cost_ratio:.1f}x (target >= 4)")
    print(f"headline: endpoint/in-process {endpoint_ratio:.2f}; expected is {cost_ratio:.1f}x cheaper than "
          f"sampled k={args.samples}")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "model": args.model, "judgments": len(pairs), "clients": args.clients, "cpus": os.cpu_count(),
            "in_process_per_s": direct, "score_endpoint_per_s": scored, "rank_endpoint_per_s": ranked,
            "expected_s_per_judgment": expected_s, "sampled_s_per_judgment": sampled_s,
            "endpoint_ratio": endpoint_ratio, "sampled_over_expected_cost": cost_ratio, "batch_stats": stats,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
