"""Deploy the run's Serve applications (generator, judge) with autoscaling taken from the config."""

from __future__ import annotations

import logging
from typing import Any

from alma.actors.apps import GENERATOR_APP, JUDGE_APP
from alma.config import AlmaConfig
from alma.engines.factory import EngineSettings

log = logging.getLogger("alma.cluster")


def deployment_options(cfg: AlmaConfig) -> dict[str, Any]:
    s = cfg.serve
    return {
        "autoscaling_config": {
            "min_replicas": s.min_replicas,
            "initial_replicas": max(1, s.min_replicas),
            "max_replicas": s.max_replicas,
            "target_ongoing_requests": s.target_ongoing_requests,
            "upscale_delay_s": s.upscale_delay_s,
            "downscale_delay_s": s.downscale_delay_s,
            "look_back_period_s": s.look_back_period_s,
        },
        "ray_actor_options": {"num_cpus": s.num_cpus, "num_gpus": s.num_gpus, "resources": dict(s.resources)},
    }


def replica_bundle(cfg: AlmaConfig) -> dict[str, float]:
    """The resources one replica of the generator or judge asks for (deployment_options' actor options)."""
    s = cfg.serve
    return {name: float(v) for name, v in {"CPU": s.num_cpus, "GPU": s.num_gpus, **s.resources}.items() if v}


def start_serve() -> None:
    """Serve without its HTTP proxy: the driver talks to deployments through handles only."""
    from ray import serve

    serve.start(proxy_location="Disabled")


def deploy_generator(cfg: AlmaConfig):
    """The multiplexed generator app; returns its deployment handle. Idempotent across rounds."""
    from ray import serve

    from alma.actors.generator import Generator

    app = Generator.options(**deployment_options(cfg)).bind(EngineSettings.of(cfg.model))
    handle = serve.run(app, name=GENERATOR_APP, route_prefix=None)
    log.info("generator app ready")
    return handle


def deploy_judge(cfg: AlmaConfig, checkpoint: str, rubric: str):
    """The judge app for one judge checkpoint (redeployed in place when the judge changes)."""
    from ray import serve

    from alma.actors.judge import Judge
    from alma.actors.scorer import Scoring

    app = Judge.options(**deployment_options(cfg)).bind(
        checkpoint=checkpoint, rubric=rubric, answer_prefix=cfg.judge.answer_prefix, scoring=Scoring.of(cfg.judge),
        settings=EngineSettings.of(cfg.model))
    handle = serve.run(app, name=JUDGE_APP, route_prefix=None)
    log.info("judge app ready (%s)", checkpoint)
    return handle


def delete_apps() -> None:
    from ray import serve

    for name in (GENERATOR_APP, JUDGE_APP):
        try:
            serve.delete(name)
        except Exception as e:  # already gone is fine
            log.debug("delete %s: %s", name, e)
