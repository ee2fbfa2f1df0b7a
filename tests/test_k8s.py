"""The KubeRay manifests in k8s/, as `alma k8s render` builds them, checked offline against their schemas.

- RayJob and RayService against the KubeRay CRDs (tests/data/kuberay-crds, ray.io/v1), made strict: every
  object schema that lists properties rejects unknown fields, so a typo fails instead of being dropped;
- Service, PersistentVolumeClaim and Secret against the Kubernetes JSON schemas (kubernetes-validate, strict);
- serveConfigV2 against Ray Serve's ServeDeploySchema, with unknown keys refused too (Serve ignores them);
- the RayJob's entrypoint parsed by alma's own CLI into a valid config, the Serve import path imported and
  built, and the references between the objects (volume, Secret, Service selector, ports, paths) resolved.
"""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import os
import re
import secrets
import shlex
import shutil
import tomllib
import typing
from importlib import import_module, metadata
from pathlib import Path

import pytest
import yaml

from alma.cluster.k8s_render import KUSTOMIZE_TOOLS, overlays, render_docs
from alma.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
VENDORED_CRDS = ROOT / "tests" / "data" / "kuberay-crds"  # gzipped copies, so a clean clone needs nothing else
SHARED_CRDS = ROOT.parent / "shared" / "kuberay-crds"
CRD_DIR = Path(os.environ.get("ALMA_KUBERAY_CRDS", VENDORED_CRDS))
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayService": "ray.io_rayservices.yaml",
             "RayCluster": "ray.io_rayclusters.yaml"}
BUILDS = ["base", "cpu-demo", "gpu"]
TOKEN = secrets.token_hex(32)
# The overlays are built by kustomize (kubectl's, or the standalone one); the tests that render need one.
needs_kustomize = pytest.mark.skipif(not any(shutil.which(tool) for tool, _ in KUSTOMIZE_TOOLS),
                                     reason="neither kubectl nor kustomize is installed (alma k8s render needs one)")


def _copy_k8s(destination: Path) -> Path:
    """k8s/ with a judge token written, as a user has it before building (the token file is git-ignored)."""
    shutil.copytree(K8S, destination, ignore=shutil.ignore_patterns("judge-token"))
    (destination / "base" / "judge-token").write_text(TOKEN + "\n")
    return destination


@pytest.fixture(scope="module")
def k8s_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_k8s(tmp_path_factory.mktemp("k8s") / "k8s")


@pytest.fixture(scope="module")
def rendered(k8s_dir: Path) -> dict[str, list[dict]]:
    if not any(shutil.which(tool) for tool, _ in KUSTOMIZE_TOOLS):
        pytest.skip("neither kubectl nor kustomize is installed (alma k8s render needs one)")
    return {name: render_docs(k8s_dir, name, []) for name in BUILDS}


def _one(docs: list[dict], kind: str) -> dict:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def _serve_config(service: dict) -> dict:
    return yaml.safe_load(service["spec"]["serveConfigV2"])


def _pod_specs(docs: list[dict], kind: str) -> list[dict]:
    """Every pod template spec of the Ray cluster inside the RayJob or RayService."""
    doc = _one(docs, kind)
    cluster = doc["spec"]["rayClusterSpec" if kind == "RayJob" else "rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    return [g["template"] for g in groups]


# ---- KubeRay CRDs, strict ------------------------------------------------------------------------


def strict_schema(node: dict) -> dict:
    """A CRD schema that rejects unknown fields: the CRDs allow them, and would silently drop a typo.

    Walks the schema structure (not property names): every object schema listing `properties` gets
    `additionalProperties: false`, unless it preserves unknown fields on purpose; `required` keeps only
    properties without a default (the API server fills those in).
    """
    node = dict(node)
    if "properties" in node:
        node["properties"] = {name: strict_schema(sub) for name, sub in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        if "required" in node:
            node["required"] = [r for r in node["required"] if "default" not in node["properties"].get(r, {})]
    if isinstance(node.get("items"), dict):
        node["items"] = strict_schema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict_schema(node["additionalProperties"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            node[key] = [strict_schema(sub) for sub in node[key]]
    return node


def _crd_text(folder: Path, name: str) -> str:
    """A CRD's YAML (1 MB each) from `folder`, plain or gzipped."""
    if (folder / name).is_file():
        return (folder / name).read_text()
    if (folder / f"{name}.gz").is_file():
        return gzip.decompress((folder / f"{name}.gz").read_bytes()).decode()
    pytest.fail(f"{folder / name}: the KubeRay CRDs are missing (set ALMA_KUBERAY_CRDS to their folder)")


@pytest.mark.skipif(not SHARED_CRDS.is_dir(), reason="no ../shared/kuberay-crds beside this checkout to compare")
@pytest.mark.parametrize("name", sorted(CRD_FILES.values()))
def test_vendored_crds_are_the_shared_ones(name):
    assert _crd_text(VENDORED_CRDS, name) == _crd_text(SHARED_CRDS, name)


@functools.cache
def crd_validator(kind: str):
    import jsonschema

    crd = yaml.load(_crd_text(CRD_DIR, CRD_FILES[kind]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict_schema(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": ["object", "null"]}  # the API server's own schema covers it
    return jsonschema.Draft7Validator(schema)


def crd_errors(doc: dict) -> list[str]:
    errors = crd_validator(doc["kind"]).iter_errors(doc)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("build", BUILDS)
def test_ray_resources_validate_against_the_strict_kuberay_crds(rendered, build):
    docs = rendered[build]
    assert {d["kind"] for d in docs} == {"RayJob", "RayService", "Service", "PersistentVolumeClaim", "Secret"}
    for doc in docs:
        if doc["kind"] in CRD_FILES:
            assert doc["apiVersion"] == "ray.io/v1"
            assert crd_errors(doc) == [], doc["kind"]


TYPOS = [
    ("RayJob", ["spec"], "shutdownAfterJobFinish", True),
    ("RayJob", ["spec", "rayClusterSpec"], "enableInTreeAutoscalling", True),
    ("RayJob", ["spec", "rayClusterSpec", "workerGroupSpecs", 0], "maxReplica", 3),
    ("RayJob", ["spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0], "resource", {}),
    ("RayJob", ["spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "volumes", 0,
                "persistentVolumeClaim"], "claimname", "x"),
    ("RayService", ["spec"], "serveConfig", "applications: []"),
    ("RayService", ["spec", "rayClusterConfig", "autoscalerOptions"], "idleTimeoutSecond", 5),
]


@pytest.mark.parametrize(("kind", "where", "typo", "value"), TYPOS, ids=[t[2] for t in TYPOS])
def test_the_strict_crds_reject_a_misspelt_field(rendered, kind, where, typo, value):
    doc = copy.deepcopy(_one(rendered["gpu"], kind))
    node = doc
    for key in where:
        node = node[key]
    node[typo] = value
    errors = crd_errors(doc)
    assert len(errors) == 1 and f"'{typo}' was unexpected" in errors[0], errors


@needs_kustomize
def test_a_typo_in_an_overlay_patch_fails_validation(tmp_path):
    k8s = _copy_k8s(tmp_path / "k8s")
    patch = k8s / "overlays" / "gpu" / "rayjob.yaml"
    patch.write_text(patch.read_text().replace("nodeSelector:", "nodeSelecter:"))
    errors = crd_errors(_one(render_docs(k8s, "gpu", []), "RayJob"))
    assert any("'nodeSelecter' was unexpected" in e for e in errors), errors


def test_required_fields_without_a_default_are_still_required(rendered):
    job = copy.deepcopy(_one(rendered["base"], "RayJob"))
    del job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["groupName"]
    assert any("'groupName' is a required property" in e for e in crd_errors(job))
    job = copy.deepcopy(_one(rendered["base"], "RayJob"))
    del job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"]  # has a default: may be left out
    assert crd_errors(job) == []


# ---- standard resources ---------------------------------------------------------------------------


def _kubernetes_validate(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("build", BUILDS)
def test_standard_resources_validate_against_the_kubernetes_schemas(rendered, build):
    for kind in ("Service", "PersistentVolumeClaim", "Secret"):
        _kubernetes_validate(_one(rendered[build], kind))


def test_the_kubernetes_schemas_reject_a_misspelt_field(rendered):
    import kubernetes_validate

    claim = copy.deepcopy(_one(rendered["base"], "PersistentVolumeClaim"))
    claim["spec"]["accesModes"] = claim["spec"].pop("accessModes")
    with pytest.raises(kubernetes_validate.ValidationError, match="accesModes"):
        _kubernetes_validate(claim)


# ---- Ray Serve config and the judge app -----------------------------------------------------------


def unknown_keys(data: typing.Any, model: type, where: str = "") -> list[str]:
    """Keys in `data` that `model` (a pydantic model, recursively) does not declare: Serve ignores those."""
    from pydantic import BaseModel

    def models_in(annotation: typing.Any) -> list[type]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]

    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            found.append(f"{where}{key}")
            continue
        inner = models_in(field.annotation)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            for sub in inner[:1]:
                found += unknown_keys(item, sub, f"{where}{key}{f'[{i}]' if isinstance(value, list) else ''}.")
    return found


@pytest.mark.parametrize("build", BUILDS)
def test_serve_config_validates_against_ray_serve_schema(rendered, build):
    from ray.serve.schema import ServeDeploySchema

    config = _serve_config(_one(rendered[build], "RayService"))
    ServeDeploySchema.model_validate(config)
    assert unknown_keys(config, ServeDeploySchema) == []


def test_unknown_serve_config_keys_are_caught():
    from ray.serve.schema import ServeDeploySchema

    config = {"applications": [{"import_path": "a:b", "deployments": [
        {"name": "X", "autoscaling_config": {"max_replica": 2}, "ray_actor_options": {"num_cpu": 1}}]}]}
    ServeDeploySchema.model_validate(config)  # Serve itself would accept it
    assert unknown_keys(config, ServeDeploySchema) == [
        "applications[0].deployments[0].autoscaling_config.max_replica",
        "applications[0].deployments[0].ray_actor_options.num_cpu"]


def test_serve_import_path_builds_the_judge_app_it_configures(rendered, tiny_model, monkeypatch):
    config = _serve_config(_one(rendered["gpu"], "RayService"))
    [app_config] = config["applications"]
    module, _, attr = app_config["import_path"].partition(":")
    builder = getattr(import_module(module), attr)
    args = {**app_config["args"], "checkpoint": str(tiny_model)}  # the run's judge lives on the cluster's volume

    monkeypatch.delenv("ALMA_JUDGE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="needs a token"):
        builder(args)
    monkeypatch.setenv("ALMA_JUDGE_TOKEN", TOKEN)
    app = builder(args)
    from ray.serve.deployment import Application

    assert isinstance(app, Application)
    assert [d["name"] for d in app_config["deployments"]] == [app._bound_deployment.name]
    with pytest.raises(ValueError, match="checkpoints"):
        builder({**args, "checkpoints": "typo"})


# ---- the run: entrypoint and runtime env ----------------------------------------------------------


def _entrypoint_config(job: dict):
    from alma.cli import _config, build_parser

    argv = shlex.split(job["spec"]["entrypoint"])
    [script] = [e for e in metadata.entry_points(group="console_scripts") if e.name == argv[0]]
    assert script.value == "alma.cli:main" and callable(script.load())
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    return args, _config(args)


@pytest.mark.parametrize("build", BUILDS)
def test_the_rayjob_runs_alma_run_with_a_valid_config(rendered, build):
    job = _one(rendered[build], "RayJob")
    _, cfg = _entrypoint_config(job)
    assert cfg.out_dir.startswith("/data/") and cfg.cluster.address is None  # joins through RAY_ADDRESS
    assert cfg.train.use_gpu is (build == "gpu") and cfg.judge_train.use_gpu is (build == "gpu")
    assert job["spec"]["shutdownAfterJobFinishes"] is True and job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is True


def test_the_job_runtime_env_merges_with_the_drivers(rendered):
    from ray.runtime_env import RuntimeEnv
    from ray.runtime_env.runtime_env import _merge_runtime_env

    from alma.cluster.local import DRIVER_RUNTIME_ENV

    job_env = yaml.safe_load(_one(rendered["base"], "RayJob")["spec"]["runtimeEnvYAML"])
    assert job_env["env_vars"]["ALMA_CACHE"].startswith("/data/")
    assert _merge_runtime_env(RuntimeEnv(**job_env), RuntimeEnv(**DRIVER_RUNTIME_ENV)) is not None
    clash = {"env_vars": {**job_env["env_vars"], "TOKENIZERS_PARALLELISM": "true"}}
    assert _merge_runtime_env(RuntimeEnv(**clash), RuntimeEnv(**DRIVER_RUNTIME_ENV)) is None  # what ray.init refuses


# ---- references between the objects --------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDS)
def test_the_objects_refer_to_each_other_correctly(rendered, build):
    docs = rendered[build]
    claim, secret, service = (_one(docs, k) for k in ("PersistentVolumeClaim", "Secret", "Service"))
    job, judge = _one(docs, "RayJob"), _one(docs, "RayService")
    assert base64.b64decode(secret["data"]["token"]).decode().strip() == TOKEN

    for kind in ("RayJob", "RayService"):
        for template in _pod_specs(docs, kind):
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            [container] = template["spec"]["containers"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
            assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
            if kind == "RayService":  # the app builder may run on any pod: all of them get the token
                [env] = [e for e in container["env"] if e["name"] == "ALMA_JUDGE_TOKEN"]
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["data"]

    serve_config = _serve_config(judge)
    judge_labels = [t["metadata"]["labels"] for t in _pod_specs(docs, "RayService")]
    run_labels = [t["metadata"]["labels"] for t in _pod_specs(docs, "RayJob")]
    selector = {k: v for k, v in service["spec"]["selector"].items() if k != "ray.io/serve"}
    assert service["spec"]["selector"]["ray.io/serve"] == "true"  # set by KubeRay on pods whose proxy is healthy
    assert all(selector.items() <= labels.items() for labels in judge_labels)
    assert not any(selector.items() <= labels.items() for labels in run_labels)
    for template in _pod_specs(docs, "RayService"):
        [container] = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[service["spec"]["ports"][0]["targetPort"]] == serve_config["http_options"]["port"]

    args, cfg = _entrypoint_config(job)
    judge_args = serve_config["applications"][0]["args"]
    assert judge_args["preset"] == args.preset  # the judge scores as the run's judge did
    assert Path(judge_args["checkpoint"]).is_relative_to(cfg.out_dir)


@pytest.mark.parametrize("build", BUILDS)
def test_gpu_resources_only_in_the_gpu_overlay(rendered, build):
    groups = _one(rendered[build], "RayJob")["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpu_groups = [g for g in groups
                  if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
    assert len(gpu_groups) == (build == "gpu")
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["maxReplicas"]
    for group in gpu_groups:
        spec = group["template"]["spec"]
        assert spec["nodeSelector"] and spec["tolerations"][0]["key"] == "nvidia.com/gpu"
        resources = spec["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"


def test_cpu_demo_asks_for_a_one_node_volume(rendered):
    assert _one(rendered["cpu-demo"], "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert _one(rendered["gpu"], "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]


# ---- the renderer ---------------------------------------------------------------------------------


def test_the_overlays_are_cpu_demo_and_gpu():
    assert overlays(K8S) == ["cpu-demo", "gpu"]


@needs_kustomize
def test_values_change_what_they_name(k8s_dir):
    from alma.core.storage import scratch_dir

    values = ["image=registry.example.com/alma:0.2", "storage=500Gi", "storage_class=nfs-rwx", "gpus=4",
              "workers=16", "model=/data/models/base", "out=s3://bucket/runs/exp-7", "run.train.num_workers=4"]
    docs = render_docs(k8s_dir, "gpu", values)
    assert {c["image"] for d in docs for c in _containers_of(d)} == {"registry.example.com/alma:0.2"}
    claim = _one(docs, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "500Gi"
    assert claim["spec"]["storageClassName"] == "nfs-rwx"
    groups = _one(docs, "RayJob")["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert [g["maxReplicas"] for g in groups] == [16, 16]
    assert groups[1]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    _, cfg = _entrypoint_config(_one(docs, "RayJob"))
    assert cfg.model.base == "/data/models/base" and cfg.out_dir == "s3://bucket/runs/exp-7" and cfg.train.use_gpu
    assert cfg.train.num_workers == 4
    # The judge serves from the run's working copy, where the driver in the pod (ALMA_CACHE=/data/cache) puts it.
    checkpoint = _serve_config(_one(docs, "RayService"))["applications"][0]["args"]["checkpoint"]
    working_copy = scratch_dir("s3://bucket/runs/exp-7", Path("/data/cache/runs"))
    assert checkpoint == f"{working_copy}/checkpoints/judge-distilled"
    for doc in docs:
        if doc["kind"] in CRD_FILES:
            assert crd_errors(doc) == []
    _kubernetes_validate(claim)

    moved = render_docs(k8s_dir, "cpu-demo", ["out=/data/runs/other", "judge_checkpoint=/data/judges/j"])
    assert _serve_config(_one(moved, "RayService"))["applications"][0]["args"]["checkpoint"] == "/data/judges/j"
    assert "--out /data/runs/other" in _one(moved, "RayJob")["spec"]["entrypoint"]


@needs_kustomize
def test_the_uri_working_copy_is_where_the_driver_puts_it(k8s_dir, monkeypatch):
    docs = render_docs(k8s_dir, "base", ["out=gs://bucket/runs/exp-8"])
    monkeypatch.delenv("ALMA_SCRATCH", raising=False)
    monkeypatch.setenv("ALMA_CACHE", "/data/cache")  # as the RayJob's runtime env sets it in the pods
    _, cfg = _entrypoint_config(_one(docs, "RayJob"))
    checkpoint = _serve_config(_one(docs, "RayService"))["applications"][0]["args"]["checkpoint"]
    assert Path(checkpoint) == cfg.run_dir() / "checkpoints" / "judge-distilled"


def _containers_of(doc: dict) -> list[dict]:
    from alma.cluster.k8s_render import _containers

    return _containers(doc)


@needs_kustomize
@pytest.mark.parametrize(("overlay", "value", "message"), [
    ("gpu", "colour=red", "unknown key 'colour'"),
    ("gpu", "run.roundz=3", "unknown key 'roundz'"),
    ("gpu", "run.rounds=0", "'rounds'"),
    ("gpu", "run.=3", "unknown key 'run.'"),
    ("gpu", "image", "expected KEY=VALUE"),
    ("gpu", "image=has space", "not an image reference"),
    ("gpu", "storage=lots", "Kubernetes quantity"),
    ("gpu", "storage_class=Not_A_Name", "not a storage class name"),
    ("gpu", "gpus=0", "whole number >= 1"),
    ("gpu", "gpus=two", "whole number >= 1"),
    ("cpu-demo", "gpus=1", "no GPU worker group"),
    ("gpu", "workers=-1", "whole number >= 1"),
    ("gpu", "model=builtin:nope", "unknown built-in model"),
    ("gpu", "model=models/mine", "absolute path"),
    ("gpu", "out=runs/x", "absolute path"),
    ("gpu", "judge_checkpoint=judge", "absolute path"),
    ("nope", "image=a", "no such overlay"),
])
def test_bad_values_are_one_line_errors(k8s_dir, overlay, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        render_docs(k8s_dir, overlay, [value])
    assert "\n" not in str(caught.value)


@needs_kustomize
def test_cli_renders_and_refuses_bad_values_with_exit_2(k8s_dir, capsys):
    from alma.cli import main

    assert main(["k8s", "render", "--overlay", "gpu", "--dir", str(k8s_dir), "--set", "gpus=2"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert [d["kind"] for d in docs] == ["Secret", "PersistentVolumeClaim", "Service", "RayJob", "RayService"]
    assert main(["k8s", "render", "--overlay", "gpu", "--dir", str(k8s_dir), "--set", "gpus=many"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("alma: error: --set gpus=many") and err.count("\n") == 1


def test_a_missing_token_file_is_a_one_line_error(tmp_path):
    shutil.copytree(K8S, tmp_path / "k8s", ignore=shutil.ignore_patterns("judge-token"))
    with pytest.raises(ConfigError, match="judge-token: missing"):
        render_docs(tmp_path / "k8s", "cpu-demo", [])


def test_without_kustomize_render_is_a_one_line_error(k8s_dir, monkeypatch):
    from alma.cluster import k8s_render

    monkeypatch.setattr(k8s_render.shutil, "which", lambda tool: None)
    with pytest.raises(ConfigError, match="install kubectl .* or kustomize") as e:
        render_docs(k8s_dir, "gpu", [])
    assert "\n" not in str(e.value)


@needs_kustomize
def test_a_broken_kustomization_is_kustomizes_own_error_in_one_line(tmp_path):
    k8s = _copy_k8s(tmp_path / "k8s")
    (k8s / "overlays" / "gpu" / "kustomization.yaml").write_text("resources: [../../base, no-such-file.yaml]\n")
    with pytest.raises(ConfigError, match="kustomize .* failed: .*no-such-file") as e:
        render_docs(k8s, "gpu", [])
    assert "\n" not in str(e.value)


# ---- the image ------------------------------------------------------------------------------------


def test_the_dockerfile_installs_every_package_with_the_pinned_ray(rendered):
    import ray

    text = (K8S / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = set(re.findall(r"^COPY --chown=\S+ (.+) \S+$", text, re.M))
    sources = {word for line in copied for word in line.split()}
    assert set(project["tool"]["setuptools"]["package-dir"].values()) | {"pyproject.toml", "README.md"} <= sources
    extras = re.search(r"^ARG EXTRAS=(\S+)$", text, re.M).group(1).split(",")
    assert set(extras) <= set(project["project"]["optional-dependencies"])
    [ray_pin] = [d for d in project["project"]["dependencies"] if d.startswith("ray[")]
    pinned = ray_pin.split("==")[1]
    assert re.search(rf"^ARG BASE_IMAGE=rayproject/ray:{re.escape(pinned)}-py\d+", text, re.M)
    assert pinned == ray.__version__
    for build in BUILDS:
        assert _one(rendered[build], "RayJob")["spec"]["rayClusterSpec"]["rayVersion"] == pinned
        assert _one(rendered[build], "RayService")["spec"]["rayClusterConfig"]["rayVersion"] == pinned
    assert "judge-token" in (K8S / "Dockerfile.dockerignore").read_text()
