"""`alma k8s render`: build a kustomize overlay of k8s/ without kustomize, then apply `--set` values.

The builder implements exactly the kustomize features the manifests use (resources from files and folders,
a secretGenerator reading files, JSON 6902 patches with a target, `images`, metadata `labels`) and refuses
any other, so that its output is what `kubectl kustomize` prints; the tests compare the two when kubectl
is installed. Values are the few things a user changes per deployment (image, volume size, GPUs per pod,
model, run folder, ...; `run.KEY` for any field of the run's config), applied to the built objects so that
nobody edits YAML for them, and checked: a bad one is a ConfigError, one line at the CLI.
"""

from __future__ import annotations

import base64
import copy
import re
import shlex
from pathlib import Path
from typing import Any, Callable

import yaml

from alma.core.errors import ConfigError

Doc = dict[str, Any]

_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "patches", "secretGenerator", "images", "labels"}
_TARGET_KEYS = {"group", "version", "kind", "name"}
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GPU = "nvidia.com/gpu"


# ---- the kustomize subset --------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None


def _load_documents(path: Path) -> list[Doc]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    for doc in docs:
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict) or "kind" not in doc:
            raise ConfigError(f"{path}: every document must be a Kubernetes object with kind and metadata")
    return docs


def _resource_id(doc: Doc) -> tuple[str, str, str]:
    return doc.get("apiVersion", ""), doc.get("kind", ""), doc.get("metadata", {}).get("name", "")


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(node: list, token: str, op: str) -> int:
    if token == "-" and op == "add":
        return len(node)
    if not token.isdigit() or int(token) > len(node) - (op != "add"):
        raise ValueError(f"no list index {token!r}")
    return int(token)


def apply_json_patch(doc: Doc, ops: list[dict[str, Any]]) -> Doc:
    """RFC 6902 add / replace / remove on a copy of `doc` (what kustomize's JSON patches use)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, tokens = op.get("op"), _pointer(op.get("path", ""))
        if kind not in ("add", "replace", "remove"):
            raise ValueError(f"operation {kind!r} is not supported (add, replace, remove)")
        parent: Any = doc
        for token in tokens[:-1]:
            if isinstance(parent, list):
                parent = parent[_index(parent, token, "get")]
            elif isinstance(parent, dict) and token in parent:
                parent = parent[token]
            else:
                raise ValueError(f"{op['path']}: missing {token!r}")
        last = tokens[-1]
        if isinstance(parent, list):
            i = _index(parent, last, kind)
            if kind == "add":
                parent.insert(i, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[i] = copy.deepcopy(op["value"])
            else:
                del parent[i]
        elif isinstance(parent, dict):
            if kind != "add" and last not in parent:
                raise ValueError(f"{op['path']}: missing {last!r}")
            if kind == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(op["value"])
        else:
            raise ValueError(f"{op['path']}: {tokens[-2] if len(tokens) > 1 else 'document'} is not a map or list")
    return doc


def _matches(doc: Doc, target: dict[str, str]) -> bool:
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    wanted = {"group": group, "version": version, "kind": doc.get("kind"), "name": doc["metadata"].get("name")}
    return all(wanted[key] == value for key, value in target.items())


def _split_image(image: str) -> tuple[str, str]:
    """("name", ":tag" or "@digest" or "")."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


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


def _set_images(docs: list[Doc], images: list[dict[str, str]]) -> None:
    for rule in images:
        if "name" not in rule or set(rule) - {"name", "newName", "newTag", "digest"}:
            raise ConfigError(f"images: {rule}: only name, newName, newTag and digest are supported")
        for container in (c for doc in docs for c in _containers(doc)):
            name, suffix = _split_image(container.get("image", ""))
            if name != rule["name"]:
                continue
            if "digest" in rule:
                suffix = "@" + rule["digest"]
            elif "newTag" in rule:
                suffix = ":" + rule["newTag"]
            container["image"] = rule.get("newName", name) + suffix


def _secret(folder: Path, spec: dict[str, Any]) -> Doc:
    unknown = set(spec) - {"name", "files", "literals", "type", "options"}
    options = spec.get("options", {})
    unknown |= set(options) - {"disableNameSuffixHash", "labels", "annotations"}
    if unknown:
        raise ConfigError(f"{folder}: secretGenerator {spec.get('name')}: {', '.join(sorted(unknown))} not supported")
    if options.get("disableNameSuffixHash") is not True:
        # kustomize would append a content hash to the name, and nothing here rewrites references to it.
        raise ConfigError(f"{folder}: secretGenerator {spec['name']}: set options.disableNameSuffixHash: true")
    data: dict[str, bytes] = {}
    for entry in spec.get("files", []):
        key, _, relative = entry.rpartition("=") if "=" in entry else ("", "", entry)
        path = folder / relative
        if not path.is_file():
            raise ConfigError(f"{path}: missing; secretGenerator {spec['name']} reads it (k8s/README.md says how "
                              "to create it)")
        data[key or Path(relative).name] = path.read_bytes()
    for entry in spec.get("literals", []):
        key, _, value = entry.partition("=")
        data[key] = value.encode()
    metadata: dict[str, Any] = {"name": spec["name"]}
    for field in ("labels", "annotations"):
        if options.get(field):
            metadata[field] = dict(options[field])
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": spec.get("type", "Opaque"),
            "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())}}


def build(folder: Path) -> list[Doc]:
    """The objects of the kustomization in `folder`, in kustomize's order of operations."""
    kustomization = _load_yaml(folder / "kustomization.yaml")
    if not isinstance(kustomization, dict):
        raise ConfigError(f"{folder / 'kustomization.yaml'}: not a kustomization")
    unknown = set(kustomization) - _KUSTOMIZATION_KEYS
    if unknown:
        raise ConfigError(f"{folder / 'kustomization.yaml'}: {', '.join(sorted(unknown))} not supported by this "
                          "renderer; use kubectl kustomize")
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            docs += build(path)
        else:
            docs += _load_documents(path)
    docs += [_secret(folder, spec) for spec in kustomization.get("secretGenerator", [])]
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        if _resource_id(doc) in seen:
            raise ConfigError(f"{folder}: {'/'.join(_resource_id(doc))} is defined twice")
        seen.add(_resource_id(doc))
    for patch in kustomization.get("patches", []):
        target = patch.get("target", {})
        if not target or set(target) - _TARGET_KEYS or set(patch) - {"path", "patch", "target"}:
            raise ConfigError(f"{folder}: patches need a target of {sorted(_TARGET_KEYS)} and a path or patch")
        ops = _load_yaml(folder / patch["path"]) if "path" in patch else yaml.safe_load(patch["patch"])
        if not isinstance(ops, list):
            raise ConfigError(f"{folder}: {patch.get('path', 'inline patch')}: only JSON 6902 patches (a list of "
                              "operations) are supported by this renderer")
        hits = [i for i, doc in enumerate(docs) if _matches(doc, target)]
        if not hits:
            raise ConfigError(f"{folder}: patch {patch.get('path', '')} matches no resource ({target})")
        for i in hits:
            try:
                docs[i] = apply_json_patch(docs[i], ops)
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise ConfigError(f"{folder}: patch {patch.get('path', '')} on {docs[i]['metadata']['name']}: {e}") \
                    from None
    _set_images(docs, kustomization.get("images", []))
    for rule in kustomization.get("labels", []):
        if rule.get("includeSelectors") or rule.get("includeTemplates"):
            raise ConfigError(f"{folder}: labels with includeSelectors/includeTemplates are not supported")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(rule.get("pairs", {}))
    return docs


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
    from alma.models import BUILDERS, BUILTIN_PREFIX

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
