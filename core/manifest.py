"""Atomic stage commits: a stage writes into a private temporary folder, then a manifest, then one rename.

A stage folder that exists always holds a manifest (the rename is the commit point), so "the manifest
exists" means "this stage finished", and a rerun skips it. A crash before the rename leaves only a
`.tmp-*` folder that the next attempt deletes.

A run folder at a URI (s3://, gs://) has no rename; core.storage mirrors committed stages there, manifest
last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from alma.core.errors import RunStateError

_round = round  # commit_stage's `round` argument is a round number

MANIFEST = "manifest.json"

# What a stage is, recorded in its manifest, so that status, report and eval read it instead of parsing the
# stage's label or folder. Kind -> what the stage's folder holds.
STAGE_KINDS = {
    "base": "the base model, copied into the run folder so that every node of a cluster reads it from there",
    "judge-split": "the judge seed split by prompt into training and held-out triplets",
    "train": "a checkpoint trained by Ray Train (SFT, judge, distilled judge, or a round's model)",
    "pool": "prompts the base model wrote few-shot, filtered and de-duplicated",
    "pool-embeddings": "the pool prompts' embeddings",
    "pool-clusters": "k-means clusters of the pool embeddings",
    "draw": "a round's prompts, drawn from distinct clusters",
    "responses": "a round's N responses per prompt",
    "distill-labels": "the judge's labels of round 1's responses, for self-distillation",
    "scores": "the judge's score of every response of a round",
    "best": "best-of-N: the top-scored response per prompt",
    "pairs": "DPO preference pairs (chosen = best, rejected = another response)",
}


@dataclass
class Manifest:
    stage: str  # the label shown to people ("round 2 judge"); code reads `kind` and `round`
    config_hash: str
    rows: int | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    committed_at: float = 0.0
    kind: str = ""  # one of STAGE_KINDS ("" in manifests written before kinds were recorded)
    round: int | None = None  # the round the stage belongs to; None for step 0 and the pool


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (checkpoints are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(stage_dir: Path) -> Manifest | None:
    path = stage_dir / MANIFEST
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    known = Manifest.__dataclass_fields__
    return Manifest(**{k: v for k, v in data.items() if k in known})


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


class StageWriter:
    """Handed to the code of a stage: where to write, and what to record in the manifest."""

    def __init__(self, tmp: Path):
        self.path = tmp
        self.rows: int | None = None
        self.info: dict[str, Any] = {}


@contextmanager
def commit_stage(stage_dir: Path, stage: str, config_hash: str, kind: str = "",
                 round: int | None = None) -> Iterator[StageWriter]:
    """Run a stage's writes in a temporary sibling folder and commit them atomically on success."""
    if kind and kind not in STAGE_KINDS:
        raise ValueError(f"unknown stage kind {kind!r}; one of {', '.join(STAGE_KINDS)}")
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    if stage_dir.exists() and read_manifest(stage_dir) is None:
        shutil.rmtree(stage_dir)  # left by a foreign tool or an old layout: never trusted
    for stale in stage_dir.parent.glob(f".tmp-{stage_dir.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = stage_dir.parent / f".tmp-{stage_dir.name}-{os.getpid()}"
    tmp.mkdir()
    writer = StageWriter(tmp)
    start = time.time()
    try:
        yield writer
        files = {str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = Manifest(stage=stage, config_hash=config_hash, rows=writer.rows, files=files,
                            info=writer.info, seconds=_round(time.time() - start, 3), committed_at=time.time(),
                            kind=kind, round=round)
        write_json_atomic(tmp / MANIFEST, asdict(manifest))
        os.replace(tmp, stage_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_committed(stage_dir: Path, config_hash: str, any_config: bool = False) -> Manifest | None:
    """The stage's manifest if it was committed under this config (or any, with `any_config`: --force);
    refuse a run made with another one."""
    manifest = read_manifest(stage_dir)
    if manifest is not None and manifest.config_hash != config_hash and not any_config:
        raise RunStateError(
            f"{stage_dir} was committed by a run with another config ({manifest.config_hash} != {config_hash}); "
            "use a new --out folder or restore the original config"
        )
    return manifest
