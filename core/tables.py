"""Reading a stage folder's Parquet results: a stage may write several files (one per Ray Data write task)
and beside them the table of rows that failed for good (ERRORS_FILE), which is not a result."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ERRORS_FILE = "errors.parquet"


def data_files(folder: Path) -> list[Path]:
    """A stage folder's Parquet result files (its errors table is not one of them)."""
    return sorted(f for f in folder.glob("*.parquet") if f.name != ERRORS_FILE)


def read_table(folder: Path) -> pa.Table:
    """All Parquet result files of a stage folder as one table (stages may write several files)."""
    files = data_files(folder)
    if not files:
        raise FileNotFoundError(f"no Parquet files in {folder}")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
