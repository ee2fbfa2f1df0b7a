"""A run folder at a URI: stages upload manifest last, resume downloads committed stages, checked by hash.

Exercised through pyarrow's filesystem layer with `file://` URIs, the same code path as s3:// and gs://.
"""

import json

import pytest

from alma.config import load_config
from alma.core.errors import ConfigError, RunStateError
from alma.core.manifest import MANIFEST, commit_stage
from alma.core.storage import RemoteRunFolder, is_uri, scratch_dir
from alma.jobs.run_context import RunContext


def _stage(root, name="pool", files=None):
    """A locally committed stage folder under `root`."""
    files = files or {"prompts.parquet": b"rows", "sub/extra.json": b"{}"}
    with commit_stage(root / name, name, "hash1") as w:
        for relative, data in files.items():
            (w.path / relative).parent.mkdir(parents=True, exist_ok=True)
            (w.path / relative).write_bytes(data)
        w.rows = 2
    return root / name


def test_uri_or_path():
    assert is_uri("s3://bucket/runs/a") and is_uri("gs://b/x") and is_uri("file:///tmp/x")
    assert not is_uri("runs/a") and not is_uri("/tmp/x") and not is_uri("C:/runs")


def test_scratch_dir_is_stable_and_distinct_per_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("ALMA_SCRATCH", str(tmp_path))
    a = scratch_dir("s3://bucket/runs/exp-1")
    assert a == scratch_dir("s3://bucket/runs/exp-1/")
    assert a.parent == tmp_path and a.name.startswith("exp-1-")
    assert scratch_dir("gs://other/runs/exp-1") != a


def test_unknown_scheme_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot open it as a filesystem"):
        RemoteRunFolder("nosuchfs://bucket/run", tmp_path)


def test_upload_puts_the_manifest_last_and_clears_a_cut_short_upload(tmp_path, monkeypatch):
    local, remote = tmp_path / "local", tmp_path / "remote"
    stage = _stage(local)
    folder = RemoteRunFolder(f"file://{remote}", local)
    order = []
    real_put = RemoteRunFolder._put

    def failing_put(self, path, target):
        order.append(target.rsplit("/", 1)[-1])
        if len(order) == 2:
            raise OSError("connection reset")
        real_put(self, path, target)

    monkeypatch.setattr(RemoteRunFolder, "_put", failing_put)
    with pytest.raises(OSError):
        folder.upload_stage(stage)
    assert (remote / "pool" / "prompts.parquet").exists() and not (remote / "pool" / MANIFEST).exists()
    assert folder.read_manifest(stage) is None  # files without a manifest are not a commit

    (remote / "pool" / "stale.bin").write_bytes(b"left by an older upload")
    order.clear()

    def recording_put(self, path, target):
        order.append(target)
        real_put(self, path, target)

    monkeypatch.setattr(RemoteRunFolder, "_put", recording_put)
    folder.upload_stage(stage)
    assert order[-1].endswith(f"pool/{MANIFEST}") and len(order) == 3
    assert sorted(p.relative_to(remote / "pool").as_posix() for p in (remote / "pool").rglob("*") if p.is_file()) == [
        MANIFEST, "prompts.parquet", "sub/extra.json"]
    assert folder.read_manifest(stage).rows == 2


def test_download_checks_hashes_and_never_leaves_half_a_stage(tmp_path):
    local, remote, fresh = tmp_path / "local", tmp_path / "remote", tmp_path / "fresh"
    stage = _stage(local)
    RemoteRunFolder(f"file://{remote}", local).upload_stage(stage)
    copy = RemoteRunFolder(f"file://{remote}", fresh)
    assert copy.download_stage(fresh / "missing") is None
    manifest = copy.download_stage(fresh / "pool")
    assert manifest.rows == 2 and (fresh / "pool" / "sub" / "extra.json").read_bytes() == b"{}"
    assert json.loads((fresh / "pool" / MANIFEST).read_text())["files"] == manifest.files

    (remote / "pool" / "prompts.parquet").write_bytes(b"bit rot")
    damaged = tmp_path / "damaged"
    with pytest.raises(RunStateError, match="does not match the sha256"):
        RemoteRunFolder(f"file://{remote}", damaged).download_stage(damaged / "pool")
    assert not (damaged / "pool").exists() and list(damaged.iterdir()) == []


@pytest.fixture
def driver_log():
    """RunContext.open adds a file handler to the 'alma' logger; remove the ones a test added."""
    import logging

    logger = logging.getLogger("alma")
    before = list(logger.handlers)
    yield
    for handler in [h for h in logger.handlers if h not in before]:
        logger.removeHandler(handler)
        handler.close()


def _context(tmp_path, monkeypatch, *overrides):
    monkeypatch.setenv("ALMA_SCRATCH", str(tmp_path / "scratch"))
    cfg = load_config("tiny", overrides=[f"out_dir=file://{tmp_path}/bucket/run", *overrides])
    return RunContext(cfg, cfg.run_dir())


def test_run_context_mirrors_stages_and_resumes_from_the_uri(tmp_path, monkeypatch, driver_log):
    import shutil

    ctx = _context(tmp_path, monkeypatch)
    assert ctx.run_dir.is_relative_to(tmp_path / "scratch") and ctx.location.startswith("file://")
    ctx.open()

    def build(w):
        (w.path / "data.txt").write_text("first run")
        w.rows = 1

    ctx.stage(ctx.run_dir / "pool", "prompt pool", build)
    ctx.write_json(ctx.layout.summary, {"rounds": []})
    bucket = tmp_path / "bucket" / "run"
    assert (bucket / "pool" / "data.txt").read_text() == "first run" and (bucket / "pool" / MANIFEST).is_file()
    assert (bucket / "config.yaml").is_file() and (bucket / "summary.json").is_file()
    assert (bucket / "logs" / "driver.log").is_file()

    shutil.rmtree(tmp_path / "scratch")  # a new pod with an empty working copy

    again = _context(tmp_path, monkeypatch)
    again.open()

    def must_not_run(w):
        raise AssertionError("a stage committed at the URI was rebuilt")

    manifest = again.stage(again.run_dir / "pool", "prompt pool", must_not_run)
    assert manifest.rows == 1 and (again.run_dir / "pool" / "data.txt").read_text() == "first run"

    other = _context(tmp_path, monkeypatch, "seed=7")
    shutil.rmtree(tmp_path / "scratch")
    with pytest.raises(RunStateError, match="another config"):
        other.open()
    other.open(force=True)  # the old config is kept beside the new one, at the URI too
    assert len(list(bucket.glob("config.*.yaml"))) == 1 and "seed: 7" in (bucket / "config.yaml").read_text()


def test_a_stage_committed_before_its_upload_finished_is_uploaded_on_resume(tmp_path, monkeypatch, driver_log):
    ctx = _context(tmp_path, monkeypatch)
    ctx.open()
    _stage(ctx.run_dir, "pool")  # committed in the working copy only, as if the pod died mid-upload
    with pytest.raises(RunStateError):  # committed under another config hash: still refused, not uploaded
        ctx.stage(ctx.run_dir / "pool", "prompt pool", lambda w: None)
    assert not (tmp_path / "bucket" / "run" / "pool").exists()

    with commit_stage(ctx.run_dir / "draw", "draw", ctx.config_hash) as w:
        (w.path / "draw.parquet").write_bytes(b"d")
    ctx.stage(ctx.run_dir / "draw", "draw", lambda w: pytest.fail("rebuilt a committed stage"))
    assert (tmp_path / "bucket" / "run" / "draw" / MANIFEST).is_file()


def test_resume_reads_the_config_of_a_run_at_a_uri(tmp_path, monkeypatch):
    from alma.config import dump_config, load_run_config

    monkeypatch.setenv("ALMA_SCRATCH", str(tmp_path / "scratch"))
    bucket = tmp_path / "bucket" / "run"
    bucket.mkdir(parents=True)
    (bucket / "config.yaml").write_text(dump_config(load_config("tiny", overrides=["rounds=3"])))
    cfg = load_run_config(f"file://{bucket}/", ["round.prompts_per_round=5"])
    assert cfg.out_dir == f"file://{bucket}" and cfg.rounds == 3 and cfg.round.prompts_per_round == 5
    with pytest.raises(ConfigError, match=r"file://.*/elsewhere: not an alma run folder \(it has no config.yaml\)"):
        load_run_config(f"file://{tmp_path}/elsewhere")
    (bucket / "config.yaml").write_text("rounds: [")
    with pytest.raises(ConfigError, match=r"run/config.yaml:1: not valid YAML"):
        load_run_config(f"file://{bucket}")


def test_a_stage_is_named_by_its_uri_and_found_on_any_node(tmp_path, monkeypatch):
    """On the driver's node a stage URI resolves to the run's working copy; on a node without it (another
    scratch folder) the stage is fetched once, checked by hash, and reused; a plain path stays a path."""
    from alma.core.storage import local_stage

    remote, driver_scratch, other_scratch = tmp_path / "bucket", tmp_path / "driver", tmp_path / "other"
    uri = f"file://{remote}/run"
    monkeypatch.setenv("ALMA_SCRATCH", str(driver_scratch))
    working = scratch_dir(uri)
    folder = RemoteRunFolder(uri, working)
    stage = _stage(working / "checkpoints", "sft-1")
    folder.upload_stage(stage)
    location = folder.uri_of(stage)
    assert location == f"{uri}/checkpoints/sft-1"
    assert local_stage(location) == stage, "the driver's node reads its working copy"

    monkeypatch.setenv("ALMA_SCRATCH", str(other_scratch))
    fetched = local_stage(location)
    assert fetched.is_relative_to(other_scratch) and (fetched / "sub" / "extra.json").read_bytes() == b"{}"
    assert json.loads((fetched / MANIFEST).read_text()) == json.loads((stage / MANIFEST).read_text())
    (remote / "run" / "checkpoints" / "sft-1" / "prompts.parquet").write_bytes(b"changed at the URI")
    assert local_stage(location) == fetched, "fetched once per node, then reused"
    assert local_stage(str(stage)) == stage

    monkeypatch.setenv("ALMA_SCRATCH", str(tmp_path / "third"))
    with pytest.raises(RunStateError, match="does not match the sha256"):
        local_stage(location)
    assert not list((tmp_path / "third").rglob(MANIFEST)), "nothing half-fetched looks committed"


def test_uri_options_stay_at_the_end(tmp_path):
    from alma.core.storage import join_uri

    uri = "s3://alma/run?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join_uri(uri, "checkpoints/sft-1") == \
        "s3://alma/run/checkpoints/sft-1?endpoint_override=127.0.0.1:9000&scheme=http"
    assert scratch_dir(uri, tmp_path).name.startswith("run-")
    assert scratch_dir(uri, tmp_path) != scratch_dir("s3://alma/run", tmp_path)


def test_a_training_output_staged_at_the_uri_is_fetched_into_the_stage_and_removed(tmp_path):
    """jobs.training.fetch_output: what rank 0 on another node left in the staging folder at the run's URI
    ends up in the driver's output folder, and the staging copy goes; with the output already written
    there (rank 0 on the driver's node) nothing is fetched."""
    from alma.core.storage import put_folder
    from alma.jobs.training import METRICS_FILE, fetch_output

    written = tmp_path / "written"
    (written / "sub").mkdir(parents=True)
    (written / METRICS_FILE).write_text("{}")
    (written / "sub" / "model.safetensors").write_bytes(b"weights")
    staging = f"file://{tmp_path}/bucket/run/ray_train/staging-round-1-1"
    put_folder(written, staging)
    output = tmp_path / "stage"
    output.mkdir()
    fetch_output({"output": str(output), "staging": staging})
    assert (output / "sub" / "model.safetensors").read_bytes() == b"weights" and (output / METRICS_FILE).is_file()
    assert not (tmp_path / "bucket" / "run" / "ray_train" / "staging-round-1-1").exists()

    put_folder(written, staging)
    (output / "sub" / "model.safetensors").write_bytes(b"rank 0 wrote here")
    fetch_output({"output": str(output), "staging": staging})
    assert (output / "sub" / "model.safetensors").read_bytes() == b"rank 0 wrote here"
    fetch_output({"output": str(output)})  # a run folder on a shared volume: no staging at all
