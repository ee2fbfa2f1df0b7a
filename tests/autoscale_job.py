"""A Ray job for test_multinode: the generator deployment under sustained load, then idle.

Deployed by cluster.serve_apps.deploy_generator from the tiny preset with autoscaling between 1 and 2
replicas, pinned to the worker nodes. Callers in threads keep more requests in flight than one replica's
target; the job waits until Serve runs 2 replicas, stops the load, and waits until it is back to 1. It
prints one JSON line: the seconds each took and the Ray nodes the replicas ran on.

Usage: python autoscale_job.py CHECKPOINT
"""

from __future__ import annotations

import json
import sys
import threading
import time

import ray
from ray import serve
from ray.util.state import list_actors

from alma.actors.apps import GENERATOR_APP
from alma.cluster.serve_apps import deploy_generator, start_serve
from alma.config import load_config

SETTINGS = ["serve.min_replicas=1", "serve.max_replicas=2", "serve.target_ongoing_requests=1",
            "serve.upscale_delay_s=2", "serve.downscale_delay_s=5",
            "serve.look_back_period_s=5", "serve.resources={alma_worker: 1}"]
CALLERS = 6
LIMIT_S = 240


def replica_nodes() -> list[str]:
    actors = list_actors(filters=[("state", "=", "ALIVE")], detail=True, limit=1000)
    return sorted(a.node_id for a in actors if f"ServeReplica:{GENERATOR_APP}" in a.class_name)


def running() -> int:
    deployment = serve.status().applications[GENERATOR_APP].deployments["Generator"]
    return deployment.replica_states.get("RUNNING", 0)


def wait_for(count: int) -> float:
    """Seconds until Serve runs `count` replicas and exactly that many replica actors are alive (a replica
    Serve stopped is gone only once its actor has ended)."""
    started = time.time()
    while running() != count or len(replica_nodes()) != count:
        if time.time() - started > LIMIT_S:
            raise TimeoutError(f"{running()} replicas running after {LIMIT_S} s, waiting for {count}")
        time.sleep(0.5)
    return time.time() - started


def main(checkpoint: str) -> None:
    ray.init()
    start_serve()
    handle = deploy_generator(load_config("tiny", overrides=SETTINGS)).options(multiplexed_model_id=checkpoint)
    sampling = {"max_new_tokens": 64, "temperature": 1.0, "top_p": 1.0, "stop": [], "seed": 1}
    prompts = [[{"role": "user", "content": f"Tell me about item {i}."}] for i in range(16)]
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            handle.generate.remote(prompts, 2, sampling).result()

    threads = [threading.Thread(target=call, daemon=True) for _ in range(CALLERS)]
    for t in threads:
        t.start()
    up = wait_for(2)
    nodes = replica_nodes()
    stop.set()
    for t in threads:
        t.join()
    down = wait_for(1)
    print(json.dumps({"scaled_up_s": round(up, 1), "replica_nodes": nodes, "scaled_down_s": round(down, 1),
                      "nodes_after": replica_nodes()}))
    serve.delete(GENERATOR_APP)


if __name__ == "__main__":
    main(sys.argv[1])
