"""Start or join Ray: a private local Ray on loopback when no cluster is given, else join the cluster.

A local Ray started here keeps its files under the run folder (short temp path when that is too long for
unix sockets), uses a token written inside the run folder rather than ~/.ray, binds to 127.0.0.1, and is
shut down by this process alone (never `ray stop`, which would kill other users' Ray on the machine).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alma.core import interrupts

log = logging.getLogger("alma.cluster")

# Unix socket paths are limited to 107 bytes; Ray appends about 60 to its temp dir.
_MAX_TEMP_DIR = 45

# The driver's runtime env. A job submitted with its own runtime env (the RayJob in k8s/) must not set these
# keys too: Ray refuses to merge the two when an env var appears in both.
DRIVER_RUNTIME_ENV = {"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0", "TOKENIZERS_PARALLELISM": "false"}}


@dataclass
class RayContext:
    started_local: bool
    address: str
    temp_dir: str | None
    owns_temp_dir: bool = False  # a short /tmp folder made because the run folder's path was too long


def _auth_token(run_dir: Path) -> Path:
    path = run_dir / "ray" / "auth_token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path


def _local_env(run_dir: Path) -> None:
    """Environment of a private local Ray: loopback only, token auth with the run's own token."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    # Ray Train's controller looks at its workers every 2 s by default, so a training's end (and a lost
    # worker) is seen up to 2 s late: on one machine a poll costs nothing, so look every 0.5 s (ending the
    # warm worker group: 3.3 s -> 1.4 s measured on 2 cores).
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(_auth_token(run_dir))
    try:  # Ray caches its config at import; re-read it when Ray was imported before us (e.g. in tests)
        from ray._raylet import Config

        Config.initialize("")
    except ImportError:
        pass
    try:  # ...and its token: a second local Ray in one process (tests, benchmarks) has a new token file
        from ray._raylet import AuthenticationTokenLoader

        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):
        pass
    # ...and the loopback switch above is a constant read at import: without this, a Ray imported
    # earlier binds the node's services to every interface.
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def start_ray(run_dir: Path, address: str | None = None, host: str = "127.0.0.1",
              num_cpus: int | None = None) -> RayContext:
    """Join `address` (or RAY_ADDRESS) if given; otherwise start a private local Ray on `host`."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        _local_env(run_dir.resolve())
    import ray

    runtime_env = {"env_vars": dict(DRIVER_RUNTIME_ENV["env_vars"])}  # a copy: ray.init may keep it
    if ray.is_initialized():
        return RayContext(False, ray.get_runtime_context().gcs_address, None)
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        interrupts.reassert()
        log.info("joined Ray cluster at %s", address)
        return RayContext(False, address, None)
    run_dir = run_dir.resolve()
    temp_dir = str(run_dir / "ray")
    owns_temp_dir = len(temp_dir) > _MAX_TEMP_DIR
    if owns_temp_dir:
        temp_dir = tempfile.mkdtemp(prefix="alma-ray-")
    cpus = num_cpus or max(4, os.cpu_count() or 1)
    ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address=host, _temp_dir=temp_dir,
             runtime_env=runtime_env, log_to_driver=False, configure_logging=False)
    interrupts.reassert()  # ray.init put its own SIGTERM handler in place of alma's
    log.info("started a local Ray on %s (%d logical CPUs, files in %s)", host, cpus, temp_dir)
    return RayContext(True, ray.get_runtime_context().gcs_address, temp_dir, owns_temp_dir)


def stop_ray(ctx: RayContext) -> None:
    """Tear down only what this process started: Serve apps of this run and, if local, its own Ray."""
    import ray

    if not ray.is_initialized():
        return
    if ctx.started_local:
        try:
            from ray import serve

            serve.shutdown()
        except Exception as e:  # shutting down is best effort; the Ray shutdown below still ends all
            log.warning("serve shutdown: %s", e)
        ray.shutdown()
        if ctx.owns_temp_dir and ctx.temp_dir:
            shutil.rmtree(ctx.temp_dir, ignore_errors=True)
