"""`alma k8s render`: build a kustomize overlay of k8s/ with kustomize, then apply `--set` values.

The overlays are built by `kubectl kustomize` (or `kustomize build`): alma does not re-implement it. Values are the few things a user changes per deployment (image, volume size, GPUs per pod,
model, run folder, ...; `run.KEY` for any field of the run's config), applied to the built objects so that
nobody edits YAML for them, and checked: a bad one is a ConfigError, one line at the CLI.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import yaml

from alma.core.errors import ConfigError

Doc = dict[str, Any]

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GPU = "nvidia.com/gpu"


# ---- building an overlay: kustomize's job --------------------------------------------------------

KUSTOMIZE_TOOLS = (("kubectl", "kustomize"), ("kustomize", "build"))
TOKEN_FILE = Path("base") / "judge-token"  # read by the base's secretGenerator; git-ignored, the user writes it


def kustomize_command() -> list[str]:
    """`kubectl kustomize` where kubectl is installed, else `kustomize build`; a one-line error without either."""
    for tool, verb in KUSTOMIZE_TOOLS:
        path = shutil.which(tool)
        if path:
            return [path, verb]
    raise ConfigError("alma k8s render builds the overlays with kustomize: install kubectl (it has kustomize "
                      "built in) or kustomize, and put it on PATH")


def build(folder: Path) -> list[Doc]:
    """The objects kustomize builds from the kustomization in `folder`."""
    command = [*kustomize_command(), str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"{' '.join(command)}: {e}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        raise ConfigError(f"{' '.join(command)} failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    try:
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    except yaml.YAMLError as e:
        raise ConfigError(f"{' '.join(command)} printed no YAML ({getattr(e, 'problem', e)})") from None
    for doc in docs:
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict) or "kind" not in doc:
            raise ConfigError(f"{' '.join(command)}: every document must be a Kubernetes object")
    return docs


def _containers(node: Any) -> list[dict[str, Any]]:
    """Every container (and init container) anywhere in a document, as kustomize's image transformer finds them."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict)]
            else:
                found += _containers(value)
    elif isinstance(node, list):
        for item in node:
            found += _containers(item)
    return found


# ---- values --------------------------------------------------------------------------------------


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def _ray_clusters(docs: list[Doc]) -> list[Doc]:
    """The RayCluster specs inside the RayJob and the RayService."""
    return [d["spec"]["rayClusterSpec"] for d in _of_kind(docs, "RayJob")] + \
        [d["spec"]["rayClusterConfig"] for d in _of_kind(docs, "RayService")]


def _argv(job: Doc) -> list[str]:
    argv = shlex.split(job["spec"]["entrypoint"])
    if argv[:2] != ["alma", "run"]:
        raise ConfigError(f"RayJob {job['metadata']['name']}: the entrypoint must start with 'alma run'")
    return argv


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """`flag value` in argv, replacing an existing one."""
    if flag in argv:
        i = argv.index(flag)
        return argv[: i + 1] + [value] + argv[i + 2 :]
    return argv + [flag, value]


def _set_override(argv: list[str], key: str, value: str) -> list[str]:
    """`--set key=value` in argv, replacing an existing one for that key."""
    for i in range(len(argv) - 1):
        if argv[i] == "--set" and argv[i + 1].split("=", 1)[0] == key:
            return argv[: i + 1] + [f"{key}={value}"] + argv[i + 2 :]
    return argv + ["--set", f"{key}={value}"]


def run_folder(job: Doc) -> str:
    """The `--out` of the RayJob's `alma run`."""
    argv = _argv(job)
    if "--out" not in argv:
        raise ConfigError(f"RayJob {job['metadata']['name']}: the entrypoint names no --out run folder")
    return argv[argv.index("--out") + 1]


def job_cache_dir(job: Doc) -> str:
    """ALMA_CACHE as the RayJob's runtime env sets it: where pods convert models and keep URI working copies."""
    env = (yaml.safe_load(job["spec"].get("runtimeEnvYAML") or "") or {}).get("env_vars", {})
    if "ALMA_CACHE" not in env:
        raise ConfigError(f"RayJob {job['metadata']['name']}: runtimeEnvYAML sets no ALMA_CACHE")
    return env["ALMA_CACHE"]


def local_run_folder(job: Doc) -> str:
    """Where the run folder is on the volume: `--out`, or for a URI its working copy under ALMA_CACHE."""
    from alma.core.storage import is_uri, scratch_dir

    out = run_folder(job)
    return str(scratch_dir(out, Path(job_cache_dir(job)) / "runs")) if is_uri(out) else out


def _serve_config(service: Doc) -> dict[str, Any]:
    return yaml.safe_load(service["spec"]["serveConfigV2"])


def _judge_args(service: Doc) -> dict[str, Any]:
    return _serve_config(service)["applications"][0]["args"]


def _set_judge_checkpoint(docs: list[Doc], checkpoint: str) -> None:
    for service in _of_kind(docs, "RayService"):
        config = _serve_config(service)
        config["applications"][0]["args"]["checkpoint"] = checkpoint
        service["spec"]["serveConfigV2"] = yaml.safe_dump(config, sort_keys=False)


def _positive_int(key: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--set {key}={value}: expected a whole number >= 1")
    return int(value)


def _absolute(key: str, value: str) -> str:
    if not value.startswith("/"):
        raise ConfigError(f"--set {key}={value}: expected an absolute path inside the pods (the volume is /data)")
    return value


def _set_image(docs: list[Doc], value: str) -> None:
    if not _IMAGE.match(value):
        raise ConfigError(f"--set image={value}: not an image reference (e.g. registry.example.com/alma:0.1.0)")
    for container in (c for doc in docs for c in _containers(doc)):
        container["image"] = value


def _set_storage(docs: list[Doc], value: str) -> None:
    if not _QUANTITY.match(value):
        raise ConfigError(f"--set storage={value}: expected a Kubernetes quantity such as 50Gi")
    for claim in _of_kind(docs, "PersistentVolumeClaim"):
        claim["spec"]["resources"]["requests"]["storage"] = value


def _set_storage_class(docs: list[Doc], value: str) -> None:
    if not _DNS_NAME.match(value):
        raise ConfigError(f"--set storage_class={value}: not a storage class name")
    for claim in _of_kind(docs, "PersistentVolumeClaim"):
        claim["spec"]["storageClassName"] = value


def _set_gpus(docs: list[Doc], value: str) -> None:
    count = str(_positive_int("gpus", value))
    groups = [g for spec in _ray_clusters(docs) for g in spec.get("workerGroupSpecs", [])
              if any(_GPU in c.get("resources", {}).get("limits", {}) for c in _containers(g))]
    if not groups:
        raise ConfigError("--set gpus: this overlay has no GPU worker group; use --overlay gpu")
    for container in (c for g in groups for c in _containers(g)):
        for bound in ("requests", "limits"):
            container["resources"].setdefault(bound, {})[_GPU] = count


def _set_workers(docs: list[Doc], value: str) -> None:
    most = _positive_int("workers", value)
    for job in _of_kind(docs, "RayJob"):
        for group in job["spec"]["rayClusterSpec"].get("workerGroupSpecs", []):
            group["maxReplicas"] = most
            for field in ("replicas", "minReplicas"):
                group[field] = min(group.get(field, 0), most)


def _edit_entrypoint(docs: list[Doc], edit: Callable[[list[str]], list[str]]) -> None:
    for job in _of_kind(docs, "RayJob"):
        job["spec"]["entrypoint"] = shlex.join(edit(_argv(job)))


def _set_model(docs: list[Doc], value: str) -> None:
    from alma.checkpoints import BUILDERS, BUILTIN_PREFIX

    if value.startswith(BUILTIN_PREFIX):
        if value[len(BUILTIN_PREFIX) :] not in BUILDERS:
            known = ", ".join(BUILTIN_PREFIX + name for name in BUILDERS)
            raise ConfigError(f"--set model={value}: unknown built-in model; choose one of {known} or a folder")
    else:
        _absolute("model", value)
    _edit_entrypoint(docs, lambda argv: _set_override(argv, "model.base", value))


def _set_out(docs: list[Doc], value: str) -> None:
    from alma.core.storage import is_uri

    if not is_uri(value):
        _absolute("out", value)
    jobs = _of_kind(docs, "RayJob")
    before = {id(job): local_run_folder(job) for job in jobs}
    _edit_entrypoint(docs, lambda argv: _set_flag(argv, "--out", value))
    # The judge serves a checkpoint of this run: keep its path under the run folder's new place.
    for job in jobs:
        old, new = before[id(job)], local_run_folder(job)
        for service in _of_kind(docs, "RayService"):
            checkpoint = _judge_args(service)["checkpoint"]
            if checkpoint.startswith(old.rstrip("/") + "/"):
                _set_judge_checkpoint(docs, new.rstrip("/") + checkpoint[len(old.rstrip("/")) :])


def _set_checkpoint(docs: list[Doc], value: str) -> None:
    _set_judge_checkpoint(docs, _absolute("judge_checkpoint", value))


# Applied in this order whatever the order on the command line: judge_checkpoint after out, which moves it.
VALUES: dict[str, tuple[Callable[[list[Doc], str], None], str]] = {
    "image": (_set_image, "container image of every pod, e.g. registry.example.com/alma:0.1.0"),
    "storage": (_set_storage, "size of the shared volume, e.g. 200Gi"),
    "storage_class": (_set_storage_class, "storage class of the shared volume (ReadWriteMany, e.g. an NFS class)"),
    "gpus": (_set_gpus, "GPUs per pod of the GPU worker group (gpu overlay)"),
    "workers": (_set_workers, "most worker pods per group of the run's cluster (the autoscaler's ceiling)"),
    "model": (_set_model, "base model: builtin:NAME or a model folder on the volume, e.g. /data/models/x"),
    "out": (_set_out, "run folder: a path on the volume (/data/runs/NAME) or a URI (s3://, gs://)"),
    "judge_checkpoint": (_set_checkpoint, "judge checkpoint folder the RayService serves (default: the run's judge)"),
}


# `--set run.KEY=VALUE` passes `--set KEY=VALUE` to the RayJob's `alma run` (any config field).
RUN_PREFIX = "run."


def parse_values(assignments: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` arguments as a dict, refusing unknown keys and repeats."""
    values: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not value:
            raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. --set image=registry.example.com/alma:0.1")
        if key not in VALUES and not (key.startswith(RUN_PREFIX) and len(key) > len(RUN_PREFIX)):
            raise ConfigError(f"--set {assignment}: unknown key '{key}'; choose one of {', '.join(VALUES)} or "
                              f"{RUN_PREFIX}CONFIG_KEY")
        if key in values:
            raise ConfigError(f"--set {key} is given twice")
        values[key] = value
    return values


def check_run_config(job: Doc) -> None:
    """Resolve the config the RayJob's `alma run` will use, so that a bad --set fails here, not in the pod."""
    from alma.config import load_config

    argv = _argv(job)
    if "--config" in argv:
        return  # a file inside the image or on the volume: only the pod can read it
    overrides = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == "--set"]
    preset = argv[argv.index("--preset") + 1] if "--preset" in argv else None
    try:
        load_config(preset, None, overrides)
    except ConfigError as e:
        raise ConfigError(f"RayJob {job['metadata']['name']} entrypoint: {e}") from None


def apply_values(docs: list[Doc], values: dict[str, str]) -> list[Doc]:
    """A copy of `docs` with each value applied."""
    docs = copy.deepcopy(docs)
    for key, (apply, _) in VALUES.items():
        if key in values:
            apply(docs, values[key])
    for key, value in values.items():
        if key.startswith(RUN_PREFIX):
            field = key[len(RUN_PREFIX) :]
            _edit_entrypoint(docs, lambda argv, field=field, value=value: _set_override(argv, field, value))
    for job in _of_kind(docs, "RayJob"):
        check_run_config(job)
    return docs


# ---- output --------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (serveConfigV2, runtimeEnvYAML) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _str)

# kustomize's own output order for the kinds used here: what others depend on first.
_ORDER = {"Secret": 0, "PersistentVolumeClaim": 1, "Service": 2}


def overlays(k8s_dir: Path) -> list[str]:
    return sorted(p.name for p in (k8s_dir / "overlays").iterdir() if (p / "kustomization.yaml").is_file()) \
        if (k8s_dir / "overlays").is_dir() else []


def render_docs(k8s_dir: Path, overlay: str, assignments: list[str]) -> list[Doc]:
    """The objects of overlay `overlay` ('base' for the base alone) with the `--set` values applied."""
    values = parse_values(assignments)
    if overlay == "base":
        folder = k8s_dir / "base"
    elif overlay in overlays(k8s_dir):
        folder = k8s_dir / "overlays" / overlay
    else:
        raise ConfigError(f"--overlay {overlay}: no such overlay in {k8s_dir}; choose one of "
                          f"{', '.join(['base', *overlays(k8s_dir)])}")
    token = k8s_dir / TOKEN_FILE
    if not token.is_file():
        # kustomize would fail too, in words about symlinks; say what is missing and where the docs are
        raise ConfigError(f"{token}: missing; the judge's token Secret is built from it (docs/kubernetes.md says "
                          "how to create it)")
    docs = apply_values(build(folder), values)
    return sorted(docs, key=lambda d: (_ORDER.get(d["kind"], len(_ORDER)), d["kind"], d["metadata"]["name"]))


def render(k8s_dir: Path, overlay: str, assignments: list[str]) -> str:
    """The overlay as one YAML stream, ready for `kubectl apply -f -`."""
    docs = render_docs(k8s_dir, overlay, assignments)
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def default_k8s_dir() -> Path:
    """k8s/ in the current folder, else the one beside the installed sources (an editable install)."""
    here = Path("k8s")
    if (here / "base" / "kustomization.yaml").is_file():
        return here
    beside = Path(__file__).resolve().parents[1] / "k8s"
    if (beside / "base" / "kustomization.yaml").is_file():
        return beside
    raise ConfigError("no k8s/ folder here; run from the alma repository or pass --dir PATH/TO/k8s")
