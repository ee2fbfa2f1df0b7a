"""Prompt-pool scaling: near-duplicate removal, embedding and clustering of synthetic pools of growing size.

    python benchmarks/pool_scaling.py                                   # 2k..100k rows, embed 2k and 10k
    python benchmarks/pool_scaling.py --embed-sizes 10000,30000,100000  # embed every size too (slow on CPU)

Runs the pool's own code on synthetic prompt rows with the tiny model (builtin:tiny), in a private local
Ray on 127.0.0.1:

- near-dup: MinHash signatures + LSH (core.near_dup) over every row, in one process.
- embed: the `pool embeddings` stage (jobs.pool.embed_pool): Ray Data actors holding the model, batches
  of pool.embed_batch rows, written as Parquet; its time includes starting the actor and loading the
  model. Embedding is independent per row, so where a size is not embedded (--embed-sizes) the table
  says so, the time is extrapolated from the marginal rate between the two largest embedded sizes, and
  the size's embeddings are the embedded rows tiled with small noise: the clustering stage's cost
  depends on rows, dim and k, not on the text.
- cluster: the `pool clusters` stage (jobs.pool.cluster_pool): streamed MiniBatchKMeans, k = --clusters,
  pool.kmeans_epochs passes, then one assignment pass, Parquet in and out.

Prints wall seconds, rows/s and (for the in-process stages) CPU seconds per stage and size, the machine's
load average, and the growth exponent b of time ~ rows^b per stage (least squares on log time vs log rows;
1 is linear). Rerun with the same --out to keep the committed embeddings (their recorded time is
reported again) and measure near-dup and clustering anew.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VERBS = ["explain", "describe", "compare", "summarize", "list", "write", "plan", "fix", "design", "teach"]
TOPICS = ["black holes", "bread baking", "tax returns", "knee pain", "python loops", "french verbs", "rose pruning",
          "job interviews", "solar panels", "chess openings", "sourdough", "marathon training", "jazz chords",
          "cloud storage", "roman history", "bee keeping", "car brakes", "wedding speeches", "sleep habits",
          "spreadsheet formulas", "ocean tides", "guitar strings", "kitchen knives", "birthday parties"]
STYLES = ["for a child", "in three steps", "briefly", "with an example", "for a beginner", "as a poem",
          "in a table", "with pros and cons", "for my grandmother", "like a pirate", "in one paragraph", ""]


def synthetic_prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(VERBS).capitalize()} {rng.choice(TOPICS)} {rng.choice(STYLES)} "
            f"(case {rng.randrange(10**6)}, {rng.choice(TOPICS)})".replace("  ", " ") for _ in range(n)]


def _write_pool(ctx, prompts: list[str]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq


    pool = ctx.layout.pool_file
    pool.parent.mkdir(parents=True, exist_ok=True)
    ids = [f"p{i:07d}" for i in range(len(prompts))]
    pq.write_table(pa.table({"prompt_id": ids, "prompt": prompts, "attempt": ids}), pool)
    return pool


def _tiled_embeddings(ctx, source: Path, rows: int) -> None:
    """`rows` embeddings made from the embedded ones (tiled, plus noise), committed as the embeddings stage."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alma.core.embeddings import EMBEDDING, to_arrow, to_numpy
    from alma.jobs.pool import embeddings_dir
    from alma.core.tables import read_table

    base = to_numpy(read_table(source)[EMBEDDING])
    rng = np.random.default_rng(rows)

    def build(w):
        for part, start in enumerate(range(0, rows, 10_000)):
            index = np.arange(start, min(rows, start + 10_000))
            vectors = base[index % len(base)] + rng.normal(scale=0.05, size=(len(index), base.shape[1]))
            pq.write_table(pa.table({"prompt_id": [f"p{i:07d}" for i in index], EMBEDDING: to_arrow(vectors)}),
                           w.path / f"part-{part:04d}.parquet")
        w.rows = rows

    ctx.stage(embeddings_dir(ctx), "pool embeddings", build)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000,30000,100000", help="pool rows, comma-separated")
    parser.add_argument("--embed-sizes", default="2000,10000", help="sizes embedded with the model (others tiled)")
    parser.add_argument("--clusters", type=int, default=1000, help="k of the k-means")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of the model and of BLAS/OpenMP (default: every core); 1 gives steadier "
                        "numbers on a shared machine, where spinning threads lose their core")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    embed_sizes = {int(s) for s in args.embed_sizes.split(",")}
    if not embed_sizes & set(sizes):
        parser.error("--embed-sizes must name at least one of --sizes")

    import numpy as np
    import sklearn.cluster  # noqa: F401  (imported up front: its import is no part of the first size's time)

    from alma.cluster.local import start_ray, stop_ray
    from alma.config import load_config
    from alma.core.manifest import read_manifest
    from alma.core.near_dup import near_duplicate_mask
    from alma.jobs.pool import cluster_pool, clusters_dir, embed_pool, embeddings_dir
    from alma.jobs.run_context import RunContext
    from alma.checkpoints import resolve_model

    overrides = [f"pool.clusters={args.clusters}"]
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        overrides.append(f"model.threads={args.threads}")
    work = Path(args.out or tempfile.mkdtemp(prefix="alma-pool-bench-"))
    base = resolve_model("builtin:tiny").resolve()
    load_before = os.getloadavg()[0]
    ray_ctx = start_ray(work)
    results: dict[str, dict[int, float]] = {"near-dup": {}, "embed": {}, "cluster": {}}
    cpu: dict[str, dict[int, float]] = {"near-dup": {}, "cluster": {}}
    embedded_from: Path | None = None
    try:
        for rows in sorted(sizes, key=lambda s: (s not in embed_sizes, s)):
            cfg = load_config("tiny", overrides=[f"out_dir={work / str(rows)}", *overrides])
            ctx = RunContext(cfg, cfg.run_dir())
            prompts = synthetic_prompts(rows)
            started, cpu_started = time.perf_counter(), time.process_time()
            dropped = sum(near_duplicate_mask(prompts, cfg.pool.near_dup_threshold, cfg.pool.near_dup_perms,
                                              cfg.pool.near_dup_shingle))
            results["near-dup"][rows] = time.perf_counter() - started
            cpu["near-dup"][rows] = time.process_time() - cpu_started
            pool_file = _write_pool(ctx, prompts)
            if rows in embed_sizes:
                # A rerun with the same --out keeps committed embeddings and reports the time they took.
                embed_pool(ctx, base, pool_file)
                results["embed"][rows] = ctx.timings["pool embeddings"]
                embedded_from = embedded_from or embeddings_dir(ctx)
            else:
                _tiled_embeddings(ctx, embedded_from, rows)
            shutil.rmtree(clusters_dir(ctx), ignore_errors=True)
            started, cpu_started = time.perf_counter(), time.process_time()
            cluster_pool(ctx)
            results["cluster"][rows] = time.perf_counter() - started
            cpu["cluster"][rows] = time.process_time() - cpu_started
            info = read_manifest(clusters_dir(ctx)).info
            print(f"  {rows} rows: near-dup dropped {dropped}; k={info['clusters']} nonempty {info['nonempty']}, "
                  f"sizes {info['size_min']}..{info['size_max']}, fit {info['fit_seconds']}s "
                  f"assign {info['assign_seconds']}s", flush=True)
    finally:
        stop_ray(ray_ctx)

    print(f"\ntiny model (hidden {read_manifest(embedded_from).info['dim']}), k={args.clusters}, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after; "
          f"threads: {args.threads or 'all cores'}")
    print("(cpu s: this process's CPU time, all threads; the embed stage runs in Ray actors, so wall only)")
    print(f"{'stage':<9} {'rows':>8} {'wall s':>9} {'rows/s':>9} {'cpu s':>9}")
    for stage, timing in results.items():
        for rows in sizes:
            if rows in timing:
                used = f"{cpu[stage][rows]:>9.2f}" if rows in cpu.get(stage, {}) else f"{'-':>9}"
                print(f"{stage:<9} {rows:>8} {timing[rows]:>9.2f} {rows / timing[rows]:>9.0f} {used}")
            else:
                print(f"{stage:<9} {rows:>8} {'-':>9} {'-':>9} {'-':>9}  (not embedded: see --embed-sizes)")
    print("\ngrowth exponent b (time ~ rows^b):")
    for stage, timing in results.items():
        if len(timing) >= 2:
            x, y = np.log(list(timing)), np.log(list(timing.values()))
            by_cpu = ""
            if stage in cpu:
                by_cpu = f", by cpu time b = {np.polyfit(x, np.log(list(cpu[stage].values())), 1)[0]:.2f}"
            print(f"  {stage:<9} b = {np.polyfit(x, y, 1)[0]:.2f}{by_cpu}  over {min(timing)}..{max(timing)} rows")
            # The marginal rate leaves out fixed costs (actor start and model load; k-means++ start) that
            # make b look sublinear over small sizes.
            (r0, t0), (r1, t1) = sorted(timing.items())[-2:]
            rate = (r1 - r0) / (t1 - t0) if t1 > t0 else float("inf")
            line = f"  {'':<9} marginal {rate:.0f} rows/s ({r0}->{r1})"
            if max(timing) < max(sizes):
                line += f"; {max(sizes)} rows extrapolated: about {t1 + (max(sizes) - r1) / rate:.0f} s"
            print(line)
        elif timing:
            rows, seconds = next(iter(timing.items()))
            print(f"  {stage:<9} one size measured ({rows} rows, {rows / seconds:.0f} rows/s); at b = 1, "
                  f"{max(sizes)} rows would take about {seconds * max(sizes) / rows:.0f} s")


if __name__ == "__main__":
    main()
