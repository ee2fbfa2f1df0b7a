"""Pipeline overhead: tokens/s of a round's responses stage (Ray Data -> Serve generator deployment -> Parquet)
vs the same engine called directly in this process on the same prompts.

    python benchmarks/pipeline_overhead.py                                   # builtin:tiny, 64 prompts x 4
    python benchmarks/pipeline_overhead.py --model builtin:smollm2-135m --prompts 32
    python benchmarks/pipeline_overhead.py --prompts 256 --n 8 --set round.sampling.max_new_tokens=32

Both sides make the same engine calls: the in-process side calls `engine.generate` once per group of
`serve.request_batch` prompts with `n` samples each, which is what each deployment request carries; the
pipeline side is `jobs.streaming.stream_through` with the GenerateCaller, as the responses stage runs it
(Ray Data actors, deployment handles, retries, Parquet files, the errors split). Its time includes Ray
Data's start of its actors for the stream, which every stage pays; the replica is warmed up first (model
loaded), as in a run where the checkpoint serves several stages. Tokens are the completions re-encoded
with the model's tokenizer, on both sides. Sides alternate --repeats times; medians are reported.
At the end the deployment's own metrics (actors/metrics.py) are read back from Ray's metrics endpoint
and their totals printed above the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request

from common import (
    TokenCounter,
    add_model_argument,
    bench_config,
    chat_prompts,
    generate_requests,
    print_table,
    progress,
    serving,
    stream,
    work_dir,
)


def _in_process(engine, prompts: list[str], n: int, batch: int, sampling) -> tuple[float, list[str]]:
    """Seconds and completions of engine calls of `batch` prompts, as the deployment receives them."""
    texts = []
    started = time.perf_counter()
    for i in range(0, len(prompts), batch):
        chats = [[{"role": "user", "content": p}] for p in prompts[i : i + batch]]
        for completions in engine.generate(chats, n, sampling):
            texts += completions
    return time.perf_counter() - started, texts


def _exported_metrics(completions: int, prefix: str = "ray_alma_generator_",
                      wait_s: float = 60.0) -> dict[str, float]:
    """Totals of the generator's metrics as Ray's metrics endpoint on this node exports them (Ray adds the
    `ray_` prefix, Prometheus the `_total` of counters), once they count `completions` (they arrive some
    seconds after the calls), or what has arrived after `wait_s`."""
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    deadline = time.time() + wait_s
    totals: dict[str, float] = {}
    while time.time() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        totals = {}
        for line in text.splitlines():
            if line.startswith(prefix) and "_bucket{" not in line:
                name = line.split("{")[0].removeprefix(prefix)
                totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        if totals.get("completions_total", 0) >= completions:
            return totals
        time.sleep(3)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_argument(parser)
    parser.add_argument("--prompts", type=int, default=64, help="prompts per measurement")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repetitions; medians are reported")
    args = parser.parse_args(argv)

    from alma.core.engine_api import Sampling
    from alma.engines.factory import EngineSettings, load_engine
    from alma.core.tables import read_table
    from alma.checkpoints import resolve_model

    work = work_dir()
    cfg = bench_config(args.model, work, args.overrides)
    folder = resolve_model(cfg.model.base).resolve()
    count = TokenCounter(folder)
    prompts = chat_prompts(args.prompts)
    batch = cfg.serve.request_batch
    sampling = cfg.round.sampling.model_dump()
    rows = generate_requests(prompts, {"base": (folder, args.n)}, "bench")
    engine = load_engine(folder, EngineSettings.of(cfg.model))
    params = Sampling(**{**sampling, "stop": tuple(sampling["stop"]), "seed": 0})
    direct, piped = [], []
    with serving(cfg, work):
        progress("warming up both sides (model load in the replica, first calls)")
        _in_process(engine, prompts[:batch], args.n, batch, params)
        stream(cfg, rows[:batch], work / "warmup")
        for rep in range(args.repeats):
            seconds, texts = _in_process(engine, prompts, args.n, batch, params)
            direct.append((count(texts) / seconds, seconds, len(texts)))
            seconds, out = stream(cfg, rows, work / f"stream-{rep}")
            texts = read_table(out)["response"].to_pylist()
            piped.append((count(texts) / seconds, seconds, len(texts)))
            progress(f"repeat {rep + 1}: in-process {direct[-1][0]:.1f} tok/s, pipeline {piped[-1][0]:.1f} tok/s")
        metrics = _exported_metrics(args.n * (batch + args.repeats * len(prompts)))
    engine.close()

    def median(side, k):
        return statistics.median(v[k] for v in side)

    ratio = median(piped, 0) / median(direct, 0)
    if metrics:
        print(f"generator metrics exported (ray_alma_generator_*): {metrics.get('requests_total', 0):.0f} requests, "
              f"{metrics.get('prompts_total', 0):.0f} prompts, {metrics.get('completions_total', 0):.0f} completions, "
              f"{metrics.get('errors_total', 0):.0f} errors, mean latency "
              f"{metrics.get('latency_s_sum', 0) / max(1.0, metrics.get('latency_s_count', 0)):.2f}s")
    else:
        print("generator metrics: none exported within 60 s")
    print_table(
        f"pipeline overhead: {args.model}, engine {cfg.model.engine}, {args.prompts} prompts x {args.n} samples, "
        f"<= {sampling['max_new_tokens']} new tokens, request batch {batch}, {cfg.serve.data_concurrency} Ray Data "
        f"actor(s), medians of {args.repeats}",
        ["side", "completions", "seconds", "tokens/s"],
        [["engine in-process", int(median(direct, 2)), median(direct, 1), median(direct, 0)],
         ["Ray Data -> Serve generator", int(median(piped, 2)), median(piped, 1), median(piped, 0)]],
        f"pipeline / in-process tokens/s: {ratio:.2f} (target >= 0.85)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
