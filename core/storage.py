"""A run folder at a URI (`s3://`, `gs://`, `file://`, any pyarrow filesystem): a local working copy, mirrored.

Stages, Ray Train workers and Serve replicas read and write plain folders (a model loads from a directory),
so a run whose folder is a URI works in a local copy (`ALMA_SCRATCH`, by default under the alma cache;
on Kubernetes the shared volume) and every committed stage is uploaded to the URI.

Object stores have no rename, so the commit point there is the manifest: a stage's files are uploaded
first and its manifest last, and a stage counts as committed at the URI only once its manifest is there.
An upload cut short leaves files without a manifest, which the next upload of that stage deletes first.
A fresh working copy (a new pod, another machine) resumes by downloading committed stages, each file
checked against the sha256 its manifest recorded, and renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from alma.core.errors import ConfigError, RunStateError
from alma.core.manifest import MANIFEST, Manifest, file_sha256

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CHUNK = 1 << 20


def is_uri(location: str) -> bool:
    """True for `scheme://...` locations (a run folder mirrored through pyarrow), False for plain paths."""
    return bool(_URI.match(location))


def default_cache_dir() -> Path:
    """alma's cache ($ALMA_CACHE, else ~/.cache/alma): built models, built seed sets, run working copies."""
    return Path(os.environ.get("ALMA_CACHE", "~/.cache/alma")).expanduser()


def scratch_dir(uri: str, root: Path | None = None) -> Path:
    """The local working copy of the run folder at `uri`: one folder per URI, stable across restarts.

    Under `root` if given, else $ALMA_SCRATCH, else `runs/` in the alma cache ($ALMA_CACHE).
    """
    if root is None and os.environ.get("ALMA_SCRATCH"):
        root = Path(os.environ["ALMA_SCRATCH"]).expanduser()
    elif root is None:
        root = default_cache_dir() / "runs"
    uri = uri.rstrip("/")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", uri.rsplit("/", 1)[-1]) or "run"
    return root / f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"


class RemoteRunFolder:
    """The run folder at `uri`, mirrored from the local working copy `local`."""

    def __init__(self, uri: str, local: Path):
        from pyarrow import fs as pafs

        try:
            self.fs, root = pafs.FileSystem.from_uri(uri)
        except (OSError, ValueError) as e:  # ArrowInvalid is a ValueError; unreachable stores are OSErrors
            raise ConfigError(f"out_dir {uri}: cannot open it as a filesystem ({e})") from None
        self.uri = uri
        self.root = root.rstrip("/")
        self.local = local

    def _remote(self, path: Path) -> str:
        """The remote path of a path inside the local working copy."""
        relative = path.relative_to(self.local).as_posix()
        return self.root if relative == "." else f"{self.root}/{relative}"

    def _exists(self, remote: str) -> bool:
        from pyarrow import fs as pafs

        return self.fs.get_file_info(remote).type == pafs.FileType.File

    def _put(self, path: Path, remote: str) -> None:
        self.fs.create_dir(remote.rsplit("/", 1)[0], recursive=True)  # a no-op on object stores
        with open(path, "rb") as src, self.fs.open_output_stream(remote) as dst:
            for block in iter(lambda: src.read(_CHUNK), b""):
                dst.write(block)

    def _get(self, remote: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.fs.open_input_stream(remote) as src, open(path, "wb") as dst:
            while block := src.read(_CHUNK):
                dst.write(block)

    def read_text(self, name: str) -> str | None:
        """A top-level text file of the run folder at the URI (its config.yaml, say); None if it has none."""
        remote = f"{self.root}/{name}"
        if not self._exists(remote):
            return None
        with self.fs.open_input_stream(remote) as f:
            return f.read().decode("utf-8")

    def upload(self, path: Path) -> None:
        """Copy one file of the working copy (config, summary, log) to the URI."""
        self._put(path, self._remote(path))

    def download(self, path: Path) -> bool:
        """Fetch one file of the run folder into the working copy; False if the URI has none."""
        remote = self._remote(path)
        if not self._exists(remote):
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.download")
        self._get(remote, tmp)
        os.replace(tmp, path)
        return True

    def read_manifest(self, stage_dir: Path) -> Manifest | None:
        """The stage's manifest at the URI, None while the stage is not committed there."""
        remote = f"{self._remote(stage_dir)}/{MANIFEST}"
        if not self._exists(remote):
            return None
        with self.fs.open_input_stream(remote) as f:
            return Manifest(**json.loads(f.read().decode("utf-8")))

    def upload_stage(self, stage_dir: Path) -> None:
        """Publish a locally committed stage: clear what a cut-short upload left, files, then the manifest."""
        from pyarrow import fs as pafs

        remote = self._remote(stage_dir)
        if self.fs.get_file_info(remote).type == pafs.FileType.Directory:
            self.fs.delete_dir(remote)
        for path in sorted(p for p in stage_dir.rglob("*") if p.is_file() and p.name != MANIFEST):
            self._put(path, self._remote(path))
        self._put(stage_dir / MANIFEST, f"{remote}/{MANIFEST}")

    def download_stage(self, stage_dir: Path) -> Manifest | None:
        """Fetch a stage committed at the URI into the working copy; None if it is not committed there.

        Downloaded into a private sibling folder and renamed into place once every file matches its
        manifest hash, so the working copy never holds a half-fetched stage that looks committed.
        """
        manifest = self.read_manifest(stage_dir)
        if manifest is None:
            return None
        remote = self._remote(stage_dir)
        stage_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = stage_dir.parent / f".download-{stage_dir.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            for relative, digest in manifest.files.items():
                self._get(f"{remote}/{relative}", tmp / relative)
                if file_sha256(tmp / relative) != digest:
                    raise RunStateError(f"{self.uri}: {stage_dir.name}/{relative} does not match the sha256 in its "
                                        "manifest; the copy at the URI is damaged, delete that stage folder there")
            self._get(f"{remote}/{MANIFEST}", tmp / MANIFEST)
            if stage_dir.exists():
                shutil.rmtree(stage_dir)  # uncommitted leftovers (no manifest): the URI is the truth
            os.replace(tmp, stage_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return manifest
