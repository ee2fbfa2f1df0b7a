"""Pool embeddings as Arrow data: a `fixed_size_list<float32>` column, read back in fixed-size batches.

A fixed-size list keeps the vector length in the schema (every row has hidden_size floats), stores the
floats as one contiguous buffer, and is read by any Parquet reader; numpy views it without copying.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EMBEDDING = "embedding"


def to_arrow(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """(rows, dim) floats as a fixed_size_list<float32>[dim] array."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a (rows, dim) array, got shape {vectors.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def to_numpy(column: pa.ChunkedArray | pa.FixedSizeListArray) -> np.ndarray:
    """A fixed_size_list<float32> column as a (rows, dim) float32 array."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    dim = column.type.list_size
    parts = [chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim) for chunk in chunks]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros((0, dim), np.float32)


def parquet_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {folder}")
    return files


def iter_batches(files: Sequence[Path], batch_size: int,
                 columns: Sequence[str] = ("prompt_id", EMBEDDING)) -> Iterator[pa.Table]:
    """The files' rows as tables of exactly `batch_size` rows (the last may be shorter), in file order.

    Never holds more than about one batch plus one Parquet record batch in memory, so passes over a pool
    of any size fit in a fixed amount of memory.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=list(columns)):
            pending.append(batch)
            held += batch.num_rows
            while held >= batch_size:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, batch_size)
                rest = table.slice(batch_size)
                pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def read_rows(folder: Path, prompt_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The embeddings of `prompt_ids` (those present), by id; reads only the matching rows into memory."""
    wanted = pa.array(sorted(set(prompt_ids)), pa.string())
    out: dict[str, np.ndarray] = {}
    for path in parquet_files(folder):
        for batch in pq.ParquetFile(path).iter_batches(columns=["prompt_id", EMBEDDING]):
            table = pa.Table.from_batches([batch])
            table = table.filter(pc.is_in(table["prompt_id"], value_set=wanted))
            if table.num_rows:
                out.update(zip(table["prompt_id"].to_pylist(), to_numpy(table[EMBEDDING])))
    return out
