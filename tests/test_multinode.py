"""The pipeline on a Ray cluster of three nodes (tests/multinode.py), each node with a disk of its own.

`alma run --preset tiny` is submitted as a Ray job (its driver on the head), with the Serve replicas and
the Ray Train workers pinned to the two worker nodes, and a two-worker training that cannot fit on one
node (DDP over gloo across nodes). The whole recipe runs once, shared by the module's tests, with its run
folder in a bucket of an S3-compatible server and no shared folder at all (the stricter flavour: every
model a remote process loads is fetched from the bucket). The shared-folder flavour (a folder every node
sees, standing in for an NFS volume) is the node-loss test's: it resumes a local copy of that run at round
2. The nodes' caches, temp and scratch folders are private, so anything that is handed between nodes by a
path outside the run folder fails here.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from e2e_run import copy_before_round
from multinode import (WORKER, Cluster, namespaces_available, remove, start_cluster, start_object_store, store_copy,
                       wait_for_text)

from alma.actors.apps import GENERATOR_APP
from alma.core.manifest import read_manifest
from alma.core.run_layout import RunLayout
from alma.core.tables import read_table

pytestmark = [pytest.mark.slow,
              # A whole run as a job on three nodes: about 6 minutes on a quiet 2-core machine, 12 at load 12.
              pytest.mark.timeout(1800),
              pytest.mark.skipif(not namespaces_available(), reason="needs network, PID and mount namespaces "
                                 "(unshare, nsenter, ip, setpriv; root or a container that allows them)")]

# Replicas and training workers on the worker nodes; the two workers of a training cannot share one (3 CPUs
# each); calls retried long enough for Serve to replace a replica lost with its node; a training
# checkpoint every step for a restarted worker group to continue from.
PLACED = ["--set", f"serve.resources={{{WORKER}: 1}}", "--set", "serve.data_concurrency=2",
          "--set", "serve.request_retries=8", "--set", "serve.retry_backoff_max_s=8",
          *[arg for section in ("train", "judge_train", "dpo_train") for arg in
            ("--set", f"{section}.num_workers=2", "--set", f"{section}.cpus_per_worker=2",
             "--set", f"{section}.resources={{{WORKER}: 1}}", "--set", f"{section}.checkpoint_steps=1",
             "--set", f"{section}.max_failures=3")]]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        remove(c)


def _node_ids(cluster: Cluster) -> tuple[str, set[str]]:
    nodes = [n for n in cluster.ray_nodes() if n["state"] == "ALIVE"]
    head = next(n["node_id"] for n in nodes if n["is_head_node"])
    workers = {n["node_id"] for n in nodes if WORKER in n["resources_total"]}
    return head, workers


@pytest.fixture(scope="module")
def store_run(cluster, tmp_path_factory):
    """`alma run --preset tiny` as a Ray job with the run folder at an s3:// URI (moto's server on the
    cluster's loopback) and no shared disk; returns a local copy of the finished run, taken from the bucket
    (a folder every node sees, for the tests that start from it)."""
    root = tmp_path_factory.mktemp("store")
    store = start_object_store(cluster, root / "moto.log")
    try:
        uri = store.uri("run")
        res = cluster.submit([sys.executable, "-m", "alma.cli", "run", "--preset", "tiny", "--out", uri, *PLACED])
        assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
        assert "succeeded" in (res.stdout + res.stderr).lower()
        store_copy(cluster, "get", uri, str(root / "run"))
    finally:
        store.proc.kill()
        store.proc.wait()
    assert "joined Ray cluster" in (root / "run" / "logs" / "driver.log").read_text(), "the driver joined the cluster"
    return root / "run"


def _exact_counts(layout: RunLayout, rounds) -> list[str]:
    """Every drawn prompt of `rounds` has N responses and N scores, none failed; returns the drawn ids."""
    drawn: list[str] = []
    for rl in rounds:
        draw = pq.read_table(rl.draw_file).column("prompt_id").to_pylist()
        responses, scores = read_table(rl.responses), read_table(rl.scores)
        n = read_manifest(rl.responses).info["split"]
        per_prompt = {p: responses.column("prompt_id").to_pylist().count(p) for p in draw}
        assert set(per_prompt.values()) == {sum(n.values())}, per_prompt
        assert scores.num_rows == responses.num_rows
        assert read_manifest(rl.responses).info["errors"] == read_manifest(rl.scores).info["errors"] == 0
        drawn += draw
    return drawn


def test_tiny_run_on_three_nodes_with_only_an_object_store(cluster, store_run):
    """The driver's working copy is on the head; the replicas, the pool's embedders and the two-node
    trainings on the worker nodes have only the bucket, so every model they load (the base, sft-1, sft-2,
    the judge, round-1) they fetch from it, and every model they train comes back through it."""
    layout, (head, workers) = RunLayout(store_run), _node_ids(cluster)
    assert len(workers) == 2
    drawn = _exact_counts(layout, layout.rounds())
    assert len(layout.rounds()) == 2 and len(drawn) == len(set(drawn)) > 0, "both rounds, no prompt drawn twice"

    # Where the work went, as the run folder records it.
    for name in ("sft-1", "sft-2", "judge", "judge-distilled", "round-1", "round-2"):
        nodes = read_manifest(layout.checkpoint(name)).info["nodes"]  # trained on the worker nodes,
        assert len(nodes) == 2 and set(nodes) == workers, (name, nodes)  # one worker on each, committed by the
        assert (layout.checkpoint(name) / "model.safetensors").is_file()  # driver
    # Step 0's trainings do not fit at once here (two 2-CPU workers each, 3 CPUs a node): after the first,
    # they are jobs of the warm worker group, whose workers hold their imports already.
    for name in ("sft-2", "judge"):
        startup = read_manifest(layout.checkpoint(name)).info["startup"]
        assert startup["imports"] < 1.0, (name, startup)
    callers: set[str] = set()
    streams = [layout.pool, layout.distill_labels, *(s for rl in layout.rounds() for s in (rl.responses, rl.scores))]
    for stage in streams:
        placed = read_manifest(stage).info["nodes"]
        assert placed["replicas"] and set(placed["replicas"]) <= workers, (stage, placed)
        rows = read_table(layout.pool_raw if stage == layout.pool else stage).num_rows
        assert sum(placed["replicas"].values()) == rows, (stage, placed, rows)
        callers |= set(placed["callers"])
    # A round's 4 prompts are one call, so one caller; the pool's calls spread over two or more nodes.
    assert len(callers) >= 2, "Ray Data's caller actors ran on one node only"
    assert read_manifest(layout.pool_embeddings).rows == read_manifest(layout.pool).rows
    left = [p for p in (store_run / "ray_train").rglob("*") if p.is_file()]
    assert not left, f"staged output or Ray Train checkpoints left in the bucket: {left}"


def test_the_generator_scales_out_across_nodes_and_back(cluster, store_run):
    """Sustained load on the generator deployment (1..2 replicas, tests/autoscale_job.py, run as a Ray job):
    Serve adds a replica on the other worker node, then, once idle, removes it."""
    _, workers = _node_ids(cluster)
    res = cluster.submit([sys.executable, str(Path(__file__).with_name("autoscale_job.py")),
                          str(RunLayout(store_run).base)], timeout=600)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    [line] = [json.loads(s) for s in res.stdout.splitlines() if s.startswith('{"scaled_up_s"')]
    assert len(line["replica_nodes"]) == 2 and set(line["replica_nodes"]) == workers, line
    assert len(line["nodes_after"]) == 1
    print(f"\nscaled 1 -> 2 replicas (on both worker nodes) in {line['scaled_up_s']} s of load, "
          f"back to 1 in {line['scaled_down_s']} s idle")


def test_losing_a_worker_node_mid_stream_and_mid_training(cluster, store_run, tmp_path):
    """Round 2 of a local copy of the shared run, resumed as a Ray job with the run folder on a folder
    every node sees (the shared-folder flavour, as on an NFS volume). While its responses stream, the node
    holding the generator replica is lost (every process of it killed) and a replacement node joins, as a
    KubeRay worker group would start one; later, while round 2 trains on two nodes, one of them is lost
    too. The stream completes on the remaining nodes with exact counts and no duplicates, and Ray Train
    restarts the worker group and the run completes."""
    run = copy_before_round(store_run, tmp_path / "run", 2)
    layout, job_log, driver_log = RunLayout(run), tmp_path / "job.log", run / "logs" / "driver.log"
    before = len(driver_log.read_text()) if driver_log.is_file() else 0  # the copied run's own lines
    job = cluster.submit_async([sys.executable, "-m", "alma.cli", "run", "--resume", str(run)], job_log)
    try:
        wait_for_text(driver_log, "round 2 responses: started", job, job_log, before)
        # The stream has started and its first calls are on their way to the replica, which is still loading
        # the round's three checkpoints (several seconds), so none of its answers can be back yet.
        time.sleep(1)
        [replica] = cluster.actor_nodes(f"ServeReplica:{GENERATOR_APP}")
        lost_at = time.time()
        cluster.kill(cluster.node_named(replica))
        cluster.start_node("worker-3", 3)
        streamed_at = wait_for_text(driver_log, "round 2 responses: committed", job, job_log, before)

        wait_for_text(driver_log, "train round-2: started", job, job_log, before)
        deadline = time.time() + 180
        while len(trainers := cluster.actor_nodes("RayTrainWorker")) < 2:  # the worker group is up
            assert time.time() < deadline and job.poll() is None, (trainers, job_log.read_text()[-3000:])
            time.sleep(1)
        # The warm group's job board holds which jobs are done: it sits on the driver's node (the head, where
        # a Ray job's driver runs), so losing a worker node cannot take it along.
        assert cluster.actor_nodes("_Board") == {_node_ids(cluster)[0]}
        time.sleep(3)  # training
        train_lost_at = time.time()
        cluster.kill(cluster.node_named(sorted(trainers)[0]))
        cluster.start_node("worker-4", 3)
        trained_at = wait_for_text(driver_log, "train round-2: committed", job, job_log, before)
        assert job.wait(timeout=600) == 0, job_log.read_text()[-5000:]
    finally:
        if job.poll() is None:
            job.kill()
    print(f"\nnode lost mid-stream: responses committed {streamed_at - lost_at:.1f} s later; "
          f"node lost mid-training: round-2 committed {trained_at - train_lost_at:.1f} s later")

    rl = layout.round(2)
    drawn = _exact_counts(layout, [rl])
    assert len(drawn) == len(set(drawn)) and not set(drawn) & set(_exact_counts(layout, [layout.round(1)]))
    pairs = read_table(rl.responses).select(["prompt_id", "checkpoint", "sample"]).to_pylist()
    assert len(pairs) == len({tuple(p.values()) for p in pairs}), "a response was written twice"
    info = read_manifest(rl.responses).info
    # Every row was answered by a replica that survived: what was sent to the lost one went again (retried
    # by the callers, or re-routed by Serve's router: retried_rows says which).
    assert replica not in info["nodes"]["replicas"] and sum(info["nodes"]["replicas"].values()) == len(pairs)
    print(f"round 2 responses: {len(pairs)} rows from {len(info['nodes']['replicas'])} surviving replica node(s), "
          f"{info['retried_rows']} of them retried by the callers")
    assert (layout.checkpoint("round-2") / "model.safetensors").is_file()
