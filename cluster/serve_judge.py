"""`alma judge serve`: one judge checkpoint behind an authenticated, batching HTTP endpoint on Ray Serve.

One Serve application, whose replicas are both HTTP ingress and judge (actors/judge_http.py),
autoscaling per `serve.*` and scoring per `judge.*` like the run's judge. Serve's HTTP proxy listens on
`judge_serve.host:port`, 127.0.0.1 unless configured otherwise; a non-loopback address is refused without
a token, since the Serve proxy has no authentication of its own.

On Kubernetes the same app is deployed by KubeRay from a Serve config (the RayService in k8s/), which names
`judge_app` below as its import path; there the token is required, because the proxy listens on the pod's
network.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alma.cluster.serve_apps import deployment_options
from alma.config import AlmaConfig, load_config
from alma.core.errors import ConfigError
from alma.core.judge_api import ServiceSettings, load_token, token_digest
from alma.engines.factory import EngineSettings

log = logging.getLogger("alma.cluster")

# Not the run's app name: a served judge may share a cluster with a running `alma run`.
JUDGE_HTTP_APP = "alma-judge-http"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen_address(host: str, port: int, token: str | None) -> None:
    """Refuse, before starting anything, an exposed endpoint without a token or a port already taken."""
    if not is_loopback(host) and token is None:
        raise ConfigError(f"judge_serve.host {host} makes the judge reachable from other machines; set a token "
                          f"($ALMA_JUDGE_TOKEN or --token-file) or listen on 127.0.0.1")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as e:
        problem = "is already in use" if e.errno == errno.EADDRINUSE else f"cannot be used ({e.strerror})"
        raise ConfigError(f"{host}:{port} {problem}; choose another with --port") from None


def model_name(cfg: AlmaConfig, checkpoint: str) -> str:
    """The name clients see as `model`: configured, else the built-in spec or the checkpoint folder's name."""
    if cfg.judge_serve.model_name:
        return cfg.judge_serve.model_name
    return checkpoint if checkpoint.startswith("builtin:") else Path(checkpoint).resolve().name


def judge_http_app(cfg: AlmaConfig, folder: Path, model: str, token: str | None):
    """The judge HTTP app for the checkpoint in `folder`, bound, not running: serve.run or a Serve config runs it."""
    from alma.actors.judge_http import JudgeHttp
    from alma.actors.scorer import Scoring
    from alma.core.judge_prompt import load_rubric

    js, judge = cfg.judge_serve, cfg.judge
    settings = ServiceSettings(model=model, mode=judge.scoring, token_digest=token_digest(token) if token else None,
                               max_body_bytes=js.max_body_bytes, max_responses=js.max_responses)
    # A replica must admit more requests than one batch, so that the next batch fills while one runs.
    options = {**deployment_options(cfg), "max_ongoing_requests": max(32, 3 * js.max_batch_size)}
    return JudgeHttp.options(**options).bind(
        str(folder), load_rubric(judge.rubric), judge.answer_prefix, Scoring.of(judge), EngineSettings.of(cfg.model), settings,
        js.max_batch_size, js.batch_wait_timeout_s)


def deploy_judge_http(cfg: AlmaConfig, folder: Path, model: str, token: str | None,
                         name: str = JUDGE_HTTP_APP, route_prefix: str = "/"):
    """The judge HTTP app for the checkpoint in `folder`; returns its handle."""
    from ray import serve

    handle = serve.run(judge_http_app(cfg, folder, model, token), name=name, route_prefix=route_prefix)
    log.info("judge HTTP app %s ready at %s", name, route_prefix)
    return handle


class JudgeAppArgs(BaseModel):
    """The `args` of the judge app in a Serve config (serveConfigV2 of the RayService in k8s/)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="Judge checkpoint folder as the replicas see it (the run folder's volume).")
    preset: str | None = Field(None, description="Config preset whose judge.* and judge_serve.* settings apply.")
    config: str | None = Field(None, description="YAML config file layered over the preset.")
    overrides: list[str] = Field(default_factory=list, description="--set KEY=VALUE overrides, in order.")


def judge_app(args: dict[str, Any]):
    """Serve application builder: `import_path: alma.cluster.serve_judge:judge_app` plus `args`.

    Serve calls it wherever the config is deployed; the token comes from $ALMA_JUDGE_TOKEN (a Kubernetes
    Secret) or judge_serve.token_file, and is required: the in-cluster proxy listens on the pod network.
    """
    from alma.checkpoints import resolve_model

    parsed = JudgeAppArgs.model_validate(args)
    cfg = load_config(parsed.preset, parsed.config, parsed.overrides)
    token = load_token(cfg.judge_serve.token_file)
    if token is None:
        raise ConfigError("the judge app needs a token ($ALMA_JUDGE_TOKEN or judge_serve.token_file): in a cluster "
                          "its HTTP proxy is reachable from every pod")
    folder = resolve_model(parsed.checkpoint).resolve()
    return judge_http_app(cfg, folder, model_name(cfg, parsed.checkpoint), token)


def start_judge_http(cfg: AlmaConfig, folder: Path, model: str, token: str | None) -> None:
    """On a started Ray: Serve's HTTP proxy on judge_serve.host:port and the judge HTTP app."""
    from ray import serve

    serve.start(http_options={"host": cfg.judge_serve.host, "port": cfg.judge_serve.port})
    deploy_judge_http(cfg, folder, model, token)


def serve_judge(cfg: AlmaConfig, checkpoint: str, token: str | None,
                stop: threading.Event | None = None) -> None:
    """Serve `checkpoint` over HTTP until Ctrl-C, SIGTERM or `stop`; then remove what was started."""
    from ray import serve

    from alma.cluster.local import start_ray, stop_ray
    from alma.core.judge_prompt import load_rubric
    from alma.core.console import say
    from alma.checkpoints import resolve_model

    host, port = cfg.judge_serve.host, cfg.judge_serve.port
    check_listen_address(host, port, token)
    load_rubric(cfg.judge.rubric)  # a missing rubric file fails here, before Ray starts
    folder = resolve_model(checkpoint, trust_remote_code=cfg.model.trust_remote_code).resolve()
    model = model_name(cfg, checkpoint)
    stop = stop or threading.Event()

    def on_signal(signum, frame):  # the first Ctrl-C/SIGTERM stops cleanly, a second one at once
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    # Handled explicitly: a shell starting us in the background may have set SIGINT to be ignored, and
    # ray.init puts its own crash handler (which logs a stack trace) on SIGTERM; hence again after it.
    signals = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    ctx = None
    try:
        ctx = start_ray(cfg.run_dir() / "judge-service", cfg.cluster.address, cfg.cluster.host,
                        cfg.cluster.num_cpus)
        for sig in signals:
            signal.signal(sig, on_signal)
        start_judge_http(cfg, folder, model, token)
        if not stop.is_set():
            say(f"judge '{model}' ({cfg.judge.scoring} scoring) at http://{host}:{port}/v1 "
                f"(auth: {'bearer token' if token else 'none'}); Ctrl-C stops it")
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping the judge service")
        if ctx is not None and not ctx.started_local:
            try:
                serve.delete(JUDGE_HTTP_APP)
            except Exception as e:  # already gone is fine
                log.debug("delete %s: %s", JUDGE_HTTP_APP, e)
        if ctx is not None:
            stop_ray(ctx)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
