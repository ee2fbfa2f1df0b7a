"""Step 1: the prompt pool, built once per run and reused by every round. Three stages:

    pool/             the base model writes prompts few-shot (Ray Data through the generator deployment);
                      parsed, filtered, exact- and near-de-duplicated: prompts.parquet (prompt_id, prompt,
                      attempt), the filter funnel in the manifest
    pool-embeddings/  the base model's pooled hidden states of every prompt (Ray Data actors holding the
                      model): Parquet, prompt_id + embedding (fixed_size_list<float32>[hidden_size])
    pool-clusters/    mini-batch k-means over the embeddings, streamed from Parquet: clusters.parquet
                      (prompt_id, cluster) and kmeans.npz (centroids, pool mean)

Rounds draw from these (jobs/rounds.py draw_stage); each stage commits on its own, so a crash while
embedding a large pool does not redo its synthesis.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from alma.actors.callers import GenerateCaller
from alma.config import AlmaConfig
from alma.core.clustering import KMeansModel, fit_kmeans, unit_rows
from alma.core.embeddings import EMBEDDING, iter_batches, parquet_files, read_rows, to_numpy
from alma.core.errors import RunStateError
from alma.core.manifest import StageWriter
from alma.core.near_dup import NearDuplicateIndex
from alma.core.prompts import PromptFilter, few_shot_request, normalize, parse_reply, prompt_id, sample_few_shot
from alma.jobs.progress import watch_rows
from alma.jobs.run_context import RunContext
from alma.core.tables import read_table
from alma.jobs.streaming import (CALLER_CPUS, INLINE_ROWS, actor_fault_options, data_module, on_driver_node,
                                 stage_dataset, stream_through)

CLUSTERS_FILE = "clusters.parquet"
KMEANS_FILE = "kmeans.npz"


def embeddings_dir(ctx: RunContext) -> Path:
    return ctx.layout.pool_embeddings


def clusters_dir(ctx: RunContext) -> Path:
    return ctx.layout.pool_clusters


def _attempt(request_id: str) -> int:
    return int(request_id.rsplit("-", 1)[1])


def synthesize_pool(ctx: RunContext, base: Path, seed_prompts: list[str]) -> Path:
    cfg = ctx.cfg.pool
    out = ctx.layout.pool

    def build(w: StageWriter) -> None:
        rng = random.Random(ctx.cfg.seed)
        shots = [sample_few_shot(seed_prompts, cfg.few_shot, rng) for _ in range(cfg.attempts)]
        base_location = ctx.stage_location(base)
        requests = [{"prompt_id": f"attempt-{i}", "prompt": few_shot_request(s), "mode": "text",
                     "checkpoint": "base", "checkpoint_path": base_location, "n": 1, "seed": f"pool-{ctx.cfg.seed}-{i}"}
                    for i, s in enumerate(shots)]
        ctx.apps.generator()
        streamed = stream_through(requests, GenerateCaller, ctx.cfg, w.path / ctx.layout.pool_raw.name,
                                  {"sampling": cfg.sampling.model_dump()})
        # Attempt order, not arrival order: which duplicate is kept must not depend on scheduling.
        raw = sorted(read_table(w.path / ctx.layout.pool_raw.name).to_pylist(), key=lambda r: _attempt(r["prompt_id"]))
        near_dup = NearDuplicateIndex(cfg.near_dup_threshold, cfg.near_dup_perms, cfg.near_dup_shingle,
                                      seed=ctx.cfg.seed)
        filt = PromptFilter(cfg.min_chars, cfg.max_chars, cfg.min_letter_ratio,
                            blocked={normalize(p) for p in seed_prompts}, near_dup=near_dup)
        kept = []
        for row in raw:
            text = parse_reply(row["response"])
            if filt.keep(text, shots[_attempt(row["prompt_id"])]):
                kept.append({"prompt_id": prompt_id(text), "prompt": text, "attempt": row["prompt_id"]})
        pq.write_table(pa.Table.from_pylist(kept, schema=pa.schema(
            [("prompt_id", pa.string()), ("prompt", pa.string()), ("attempt", pa.string())])), w.path / ctx.layout.pool_file.name)
        w.rows = len(kept)
        w.info = {**streamed.info(ctx.layout.pool_raw.name), "funnel": filt.funnel(len(raw)),
                  "near_dup": {"threshold": cfg.near_dup_threshold, "shingle_words": cfg.near_dup_shingle,
                               "perms": cfg.near_dup_perms, "lsh_bands": near_dup.bands, "lsh_rows": near_dup.rows}}

    manifest = ctx.stage(out, "prompt pool", build, kind="pool")
    need = ctx.cfg.rounds * ctx.cfg.round.prompts_per_round
    if (manifest.rows or 0) < need:
        raise RunStateError(
            f"the prompt pool kept {manifest.rows} prompts (funnel {manifest.info.get('funnel')}) but "
            f"{ctx.cfg.rounds} rounds x {ctx.cfg.round.prompts_per_round} prompts need {need}; "
            "raise pool.attempts or relax the pool filters")
    return ctx.layout.pool_file


def embed_pool(ctx: RunContext, base: Path, pool_file: Path) -> Path:
    """Every pool prompt's pooled hidden state of the base model, computed by Ray Data actors in batches."""
    from alma.actors.embedder import Embedder
    from alma.engines.factory import EngineSettings

    cfg, out = ctx.cfg, embeddings_dir(ctx)

    def build(w: StageWriter) -> None:
        ctx.apps.embedders()
        ray_data = data_module()
        ds = stage_dataset(ray_data, pool_file.parent, [pool_file.name], ctx.stage_location(pool_file.parent),
                           cfg.pool.embed_batch, ["prompt_id", "prompt"])
        ds = ds.map_batches(
            Embedder,
            fn_constructor_kwargs={"checkpoint": ctx.stage_location(base), "settings": EngineSettings.of(cfg.model),
                                   "layer": cfg.pool.embed_layer, "pooling": cfg.pool.embed_pooling,
                                   "max_tokens": cfg.pool.embed_max_tokens},
            batch_size=cfg.pool.embed_batch,
            batch_format="pyarrow",
            compute=ray_data.ActorPoolStrategy(size=cfg.pool.embed_actors),
            num_cpus=cfg.serve.num_cpus,
            num_gpus=cfg.serve.num_gpus,
            resources=dict(cfg.serve.resources),
            **actor_fault_options(cfg),
        )
        with watch_rows(w.path, pq.read_metadata(pool_file).num_rows):
            ds.write_parquet(str(w.path), ray_remote_args=on_driver_node())
        files = parquet_files(w.path)
        w.rows = sum(pq.read_metadata(f).num_rows for f in files)
        expected = pq.read_metadata(pool_file).num_rows
        if w.rows != expected:
            raise RunStateError(f"embedded {w.rows} pool prompts but the pool holds {expected}")
        w.info = {"base": str(base), "layer": cfg.pool.embed_layer, "pooling": cfg.pool.embed_pooling,
                  "dim": pq.read_schema(files[0]).field(EMBEDDING).type.list_size}

    ctx.stage(out, "pool embeddings", build, kind="pool-embeddings")
    return out


def cluster_pool(ctx: RunContext) -> Path:
    """Mini-batch k-means over the pool's embeddings, streamed from Parquet; a cluster id per prompt."""
    cfg, out = ctx.cfg.pool, clusters_dir(ctx)

    def build(w: StageWriter) -> None:
        files = parquet_files(embeddings_dir(ctx))
        # MiniBatchKMeans starts from its first batch, which must hold at least k rows.
        batch = max(cfg.kmeans_batch, cfg.clusters)
        started = time.perf_counter()
        model = fit_kmeans(lambda: (to_numpy(t[EMBEDDING]) for t in iter_batches(files, batch, [EMBEDDING])),
                           cfg.clusters, seed=ctx.cfg.seed, epochs=cfg.kmeans_epochs)
        fitted = time.perf_counter()
        sizes = np.zeros(model.k, dtype=np.int64)
        distance = 0.0
        schema = pa.schema([("prompt_id", pa.string()), ("cluster", pa.int32())])
        with pq.ParquetWriter(w.path / CLUSTERS_FILE, schema) as writer:
            for table in iter_batches(files, batch):
                labels, d = model.assign(to_numpy(table[EMBEDDING]))
                writer.write_table(pa.table({"prompt_id": table["prompt_id"], "cluster": labels}, schema=schema))
                sizes += np.bincount(labels, minlength=model.k)
                distance += float(d.sum())
        model.save(w.path / KMEANS_FILE)
        w.rows = model.rows
        w.info = {"method": "sklearn MiniBatchKMeans on centred unit vectors", "clusters": model.k,
                  "requested": cfg.clusters, "nonempty": int((sizes > 0).sum()), "size_min": int(sizes.min()),
                  "size_median": float(np.median(sizes)), "size_max": int(sizes.max()),
                  "mean_sq_distance": distance / model.rows, "epochs": cfg.kmeans_epochs,
                  "fit_seconds": round(fitted - started, 3),
                  "assign_seconds": round(time.perf_counter() - fitted, 3)}

    ctx.stage(out, "pool clusters", build, kind="pool-clusters")
    return out / CLUSTERS_FILE


def pool_bundles(cfg: AlmaConfig) -> list[dict[str, float]]:
    """What the pool holds at its peak, as Ray resource bundles: the generator's replica (it stays deployed
    while the pool is embedded), the embedding actors, the stream's caller actors, and one read task's CPU
    where the pool is too large to hand Ray Data from the driver (streaming.INLINE_ROWS). What step 0
    leaves room for when the pool runs beside it (jobs.beside)."""
    from alma.cluster.serve_apps import replica_bundle

    bundles = [replica_bundle(cfg)] * (1 + cfg.pool.embed_actors) + [{"CPU": CALLER_CPUS}] * cfg.serve.data_concurrency
    if cfg.pool.attempts > INLINE_ROWS:
        bundles.append({"CPU": 1.0})
    return bundles


def build_pool(ctx: RunContext, base: Path, seed_prompts: list[str]) -> Path:
    """Synthesize, embed and cluster the pool (each a committed stage); returns the pool's prompts file."""
    pool_file = synthesize_pool(ctx, base, seed_prompts)
    embed_pool(ctx, base, pool_file)
    cluster_pool(ctx)
    return pool_file


def read_clusters(ctx: RunContext) -> tuple[list[str], list[int]]:
    """Every pool prompt id and its cluster id."""
    table = pq.read_table(clusters_dir(ctx) / CLUSTERS_FILE)
    return table["prompt_id"].to_pylist(), table["cluster"].to_pylist()


def unit_vectors(ctx: RunContext, prompt_ids: list[str]) -> dict[str, np.ndarray]:
    """The embeddings of `prompt_ids`, centred on the pool mean and unit length (as clustered)."""
    mean = KMeansModel.load(clusters_dir(ctx) / KMEANS_FILE).mean
    raw = read_rows(embeddings_dir(ctx), prompt_ids)
    ids = list(raw)
    vectors = unit_rows(np.stack([raw[i] for i in ids]), mean) if ids else []
    return dict(zip(ids, vectors))
