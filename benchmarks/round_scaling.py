"""Round scaling: the wall time of a round's sampling, judging and best-of-N at K x N = 1x, 2x and 4x, and
the exponent b of time ~ (K x N)^b.

    python benchmarks/round_scaling.py                                  # builtin:tiny, K=8 N=4 -> 16 and 32 prompts
    python benchmarks/round_scaling.py --scale-by n                     # grow N instead of K
    python benchmarks/round_scaling.py --model builtin:smollm2-135m --prompts 4

Each size runs what a round runs between its draw and its training, with the run's code: the responses
stage's stream (jobs.streaming.stream_through, GenerateCaller, N split over sft-1 / sft-2 / latest), the
judge stage's stream of those responses through the judge deployment (JudgeCaller), and best-of-N
(core.selection) over the scores read back from Parquet. The three checkpoints and the judge are the base
model's weights under other names (hard links): the cost per token is the real one. Engines are loaded
before the first size. The retraining is left out: it grows with K (the rows kept), not with K x N, and
benchmarks/train_overhead.py measures it. b near 1 means no part grows faster than the work; below 1,
fixed costs per stream (Ray Data's actor start) still weigh at these sizes. So the same round is also
timed at K = N = 1 (one response: the cost that does not grow with the work), and b is fitted again on
the times less that fixed cost: the headline, the exponent of the part of a round that grows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import (
    add_model_argument,
    bench_config,
    chat_prompts,
    checkpoint_copies,
    fit_exponent,
    generate_requests,
    print_table,
    progress,
    serving,
    stream,
    work_dir,
)


def _round(cfg, prompts: list[str], n: int, paths: dict[str, Path], out: Path) -> dict[str, float]:
    from alma.core.selection import best_of_n, split_n
    from alma.core.tables import read_table

    split = split_n(n, {name: 1.0 for name in paths})
    rows = generate_requests(prompts, {name: (paths[name], split.get(name, 0)) for name in paths}, out.name)
    generate_s, responses = stream(cfg, rows, out / "responses")
    judge_s, scores = stream(cfg, responses, out / "scores", caller="judge")
    started = time.perf_counter()
    best = best_of_n(read_table(scores).drop_columns(["distribution"]).to_pylist())
    best_s = time.perf_counter() - started
    assert len(best) == len(prompts)
    return {"generate": generate_s, "judge": judge_s, "best": best_s, "total": generate_s + judge_s + best_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_argument(parser)
    parser.add_argument("--prompts", type=int, default=8, help="K at 1x")
    parser.add_argument("--n", type=int, default=4, help="N at 1x (responses per prompt)")
    parser.add_argument("--scale-by", choices=("k", "n"), default="k", help="grow K (default) or N")
    parser.add_argument("--scales", default="1,2,4", help="multiples of K x N")
    args = parser.parse_args(argv)

    from alma.checkpoints import resolve_model

    work = work_dir()
    cfg = bench_config(args.model, work, args.overrides)
    folder = resolve_model(cfg.model.base).resolve()
    paths = checkpoint_copies(folder, ["sft-1", "sft-2", "latest"], work)
    judge = checkpoint_copies(folder, ["judge"], work)["judge"]
    scales = [int(s) for s in args.scales.split(",")]
    results = []
    with serving(cfg, work, judge=judge):
        progress("warming up: every checkpoint and the judge loaded")
        _round(cfg, chat_prompts(2), 3, paths, work / "warmup")
        fixed = _round(cfg, chat_prompts(1), 1, paths, work / "fixed")
        progress(f"fixed cost (K=1, N=1): {fixed['total']:.1f}s")
        for s in scales:
            k, n = (args.prompts * s, args.n) if args.scale_by == "k" else (args.prompts, args.n * s)
            times = _round(cfg, chat_prompts(k), n, paths, work / f"x{s}")
            results.append((s, k, n, times))
            progress(f"{s}x: K={k} N={n}: {times['total']:.1f}s")
    work_done = [k * n for _, k, n, _ in results]
    b = {part: fit_exponent(work_done, [t[part] for *_, t in results]) for part in ("total", "generate", "judge")}
    grown = [t["total"] - fixed["total"] for *_, t in results]
    b_grown = fit_exponent(work_done, grown) if min(grown) > 0 else float("nan")
    last, first = results[-1], results[0]
    marginal = (last[1] * last[2] - first[1] * first[2]) / (last[3]["total"] - first[3]["total"])
    print_table(
        f"round scaling: {args.model}, engine {cfg.model.engine}, growing {args.scale_by.upper()}, 3 checkpoints, "
        f"request batch {cfg.serve.request_batch}",
        ["scale", "K", "N", "K x N", "generate s", "judge s", "best-of-N s", "total s", "responses/s"],
        [["fixed", 1, 1, 1, fixed["generate"], fixed["judge"], fixed["best"], fixed["total"], 1 / fixed["total"]]]
        + [[f"{s}x", k, n, k * n, t["generate"], t["judge"], t["best"], t["total"], k * n / t["total"]]
           for s, k, n, t in results],
        f"time ~ (K x N)^b: b = {b['total']:.2f} as measured (generate {b['generate']:.2f}, judge {b['judge']:.2f}); "
        f"marginal {marginal:.2f} responses/s ({first[0]}x -> {last[0]}x); less the fixed "
        f"{fixed['total']:.1f}s: b = {b_grown:.2f} (target close to 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
