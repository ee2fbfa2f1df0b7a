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
import threading
from pathlib import Path
from typing import Any

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

    Under `root` if given, else $ALMA_SCRATCH, else `runs/` in the alma cache ($ALMA_CACHE). The URI's
    options (`?endpoint_override=...`) count for the hash, not for the readable part of the name.
    """
    if root is None:
        root = _scratch_root()
    base, sep, query = uri.partition("?")
    uri = base.rstrip("/") + sep + query
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base.rstrip("/").rsplit("/", 1)[-1]) or "run"
    return root / f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"


def _scratch_root() -> Path:
    if os.environ.get("ALMA_SCRATCH"):
        return Path(os.environ["ALMA_SCRATCH"]).expanduser()
    return default_cache_dir() / "runs"


def join_uri(uri: str, relative: str) -> str:
    """`relative` (a/b) inside the folder at `uri`, the URI's options kept at the end."""
    base, sep, query = uri.partition("?")
    return f"{base.rstrip('/')}/{relative}" + sep + query


def open_uri(uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem of `uri` and the path in it."""
    from pyarrow import fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as e:  # ArrowInvalid is a ValueError; unreachable stores are OSErrors
        raise ConfigError(f"{uri}: cannot open it as a filesystem ({e})") from None
    return filesystem, path.rstrip("/")


def local_stage(location: str | Path) -> Path:
    """The folder of a committed stage on this node, for a replica, a Data actor or a Train worker.

    A run folder on a shared volume names its stages by path, and every node reads them there. A run at a
    URI names them by URI (RemoteRunFolder.uri_of): on the driver's node the run's working copy holds them
    already; on any other node (no shared disk) the stage is fetched once into this node's scratch folder,
    every file checked against its manifest's sha256, and kept for the next process that needs it.
    """
    text = str(location)
    if not is_uri(text):
        return Path(text)
    base, sep, query = text.partition("?")
    parts = base.rstrip("/").split("/")
    for cut in range(len(parts) - 1, 2, -1):  # a working copy of the run on this node: "s3:", "", bucket, ...
        candidate = scratch_dir("/".join(parts[:cut]) + sep + query).joinpath(*parts[cut:])
        if (candidate / MANIFEST).is_file():
            return candidate
    dest = scratch_dir(text, _scratch_root() / "stages")
    if not (dest / MANIFEST).is_file():
        filesystem, remote = open_uri(text)
        fetch_stage(filesystem, remote, dest, text)
    return dest


def fetch_stage(filesystem: Any, remote: str, dest: Path, uri: str) -> Manifest | None:
    """Fetch the stage committed at `remote` into `dest`; None if it is not committed there.

    Downloaded into a private sibling folder and renamed into place once every file matches its manifest
    hash, so `dest` never holds a half-fetched stage that looks committed. Where another process put the
    same stage there first (replicas of one node starting together), its copy is kept.
    """
    manifest = _read_manifest(filesystem, remote)
    if manifest is None:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".download-{dest.name}-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for relative, digest in manifest.files.items():
            _get(filesystem, f"{remote}/{relative}", tmp / relative)
            if file_sha256(tmp / relative) != digest:
                raise RunStateError(f"{uri}: {relative} does not match the sha256 in its manifest; the copy at "
                                    "the URI is damaged, delete that stage folder there")
        _get(filesystem, f"{remote}/{MANIFEST}", tmp / MANIFEST)
        if _same_manifest(dest, tmp):
            return manifest  # fetched by another process meanwhile
        if dest.exists():
            shutil.rmtree(dest)  # leftovers without a manifest, or another commit's: the URI is the truth
        try:
            os.replace(tmp, dest)
        except OSError:
            if not _same_manifest(dest, tmp):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _same_manifest(a: Path, b: Path) -> bool:
    try:
        return (a / MANIFEST).read_bytes() == (b / MANIFEST).read_bytes()
    except OSError:
        return False


def _read_manifest(filesystem: Any, remote: str) -> Manifest | None:
    """The manifest of the stage folder `remote`, None while the stage is not committed there."""
    from pyarrow import fs as pafs

    if filesystem.get_file_info(f"{remote}/{MANIFEST}").type != pafs.FileType.File:
        return None
    with filesystem.open_input_stream(f"{remote}/{MANIFEST}") as f:
        return Manifest(**json.loads(f.read().decode("utf-8")))


def _put(filesystem: Any, path: Path, remote: str) -> None:
    filesystem.create_dir(remote.rsplit("/", 1)[0], recursive=True)  # a no-op on object stores
    with open(path, "rb") as src, filesystem.open_output_stream(remote) as dst:
        for block in iter(lambda: src.read(_CHUNK), b""):
            dst.write(block)


def _get(filesystem: Any, remote: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with filesystem.open_input_stream(remote) as src, open(path, "wb") as dst:
        while block := src.read(_CHUNK):
            dst.write(block)


class RemoteRunFolder:
    """The run folder at `uri`, mirrored from the local working copy `local`."""

    def __init__(self, uri: str, local: Path):
        try:
            self.fs, self.root = open_uri(uri)
        except ConfigError as e:
            raise ConfigError(f"out_dir {e}") from None
        self.uri = uri
        self.local = local

    def uri_of(self, path: Path) -> str:
        """The URI of a path inside the local working copy: how other nodes name a committed stage."""
        return join_uri(self.uri, path.relative_to(self.local).as_posix())

    def _remote(self, path: Path) -> str:
        """The remote path of a path inside the local working copy."""
        relative = path.relative_to(self.local).as_posix()
        return self.root if relative == "." else f"{self.root}/{relative}"

    def _exists(self, remote: str) -> bool:
        from pyarrow import fs as pafs

        return self.fs.get_file_info(remote).type == pafs.FileType.File

    def _put(self, path: Path, remote: str) -> None:
        _put(self.fs, path, remote)

    def _get(self, remote: str, path: Path) -> None:
        _get(self.fs, remote, path)

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
        return _read_manifest(self.fs, self._remote(stage_dir))

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
        """Fetch a stage committed at the URI into the working copy; None if it is not committed there
        (`fetch_stage`: checked by hash, renamed into place whole)."""
        return fetch_stage(self.fs, self._remote(stage_dir), stage_dir, self.uri)


def put_folder(local: Path, uri: str) -> None:
    """Copy every file under `local` to the folder at `uri` (a training's output on a node without the run
    folder, on its way to the driver)."""
    filesystem, remote = open_uri(uri)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        _put(filesystem, path, f"{remote}/{path.relative_to(local).as_posix()}")


def get_folder(uri: str, local: Path) -> int:
    """Copy every file of the folder at `uri` into `local`; how many there were (0: none, or no folder)."""
    from pyarrow import fs as pafs

    filesystem, remote = open_uri(uri)
    if filesystem.get_file_info(remote).type != pafs.FileType.Directory:
        return 0
    found = [i for i in filesystem.get_file_info(pafs.FileSelector(remote, recursive=True))
             if i.type == pafs.FileType.File]
    for info in found:
        _get(filesystem, info.path, local / info.path[len(remote) + 1:])
    return len(found)


def delete_folder(location: str | Path) -> None:
    """Remove a folder, local or at a URI; nothing if there is none."""
    from pyarrow import fs as pafs

    if not is_uri(str(location)):
        shutil.rmtree(location, ignore_errors=True)
        return
    filesystem, remote = open_uri(str(location))
    if filesystem.get_file_info(remote).type == pafs.FileType.Directory:
        filesystem.delete_dir(remote)
