"""Copy a folder into, or out of, the test's S3-compatible server (run inside the cluster's network
namespace, where the server listens): `make-bucket URI`, `put LOCAL URI`, `get URI LOCAL`."""

from __future__ import annotations

import sys
import time

from pyarrow import fs


def main(argv: list[str]) -> None:
    if argv[0] == "make-bucket":
        store, path = fs.FileSystem.from_uri(argv[1] + "&allow_bucket_creation=true")
        deadline = time.time() + 60
        while True:  # the server may still be starting
            try:
                store.create_dir(path.split("/", 1)[0])
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
    if argv[0] == "put":
        store, path = fs.FileSystem.from_uri(argv[2])
        fs.copy_files(argv[1], path, source_filesystem=fs.LocalFileSystem(), destination_filesystem=store)
    elif argv[0] == "get":
        store, path = fs.FileSystem.from_uri(argv[1])
        fs.copy_files(path, argv[2], source_filesystem=store, destination_filesystem=fs.LocalFileSystem())
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
