"""Stream a table through a Serve deployment with Ray Data and write the result as Parquet."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alma.config import AlmaConfig


def read_table(folder: Path) -> pa.Table:
    """All Parquet files of a stage folder as one table (stages may write several files)."""
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {folder}")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def data_module():
    """`ray.data`, with progress bars only on a terminal (the driver's log gets one line per stage)."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
    return ray.data


def stream_through(rows: list[dict[str, Any]] | Path, caller: type, cfg: AlmaConfig, out: Path,
                   caller_kwargs: dict[str, Any] | None = None) -> int:
    """Map `rows` (a list of dicts, or a Parquet folder) through `caller` actors into `out`; row count."""
    ray_data = data_module()
    ds = ray_data.read_parquet(str(rows)) if isinstance(rows, Path) else ray_data.from_items(rows)
    ds = ds.map_batches(
        caller,
        fn_constructor_kwargs=caller_kwargs or {},
        batch_size=cfg.serve.request_batch,
        compute=ray_data.ActorPoolStrategy(size=cfg.serve.data_concurrency),
        # Callers only wait on deployment handles; the deployments hold the compute.
        num_cpus=0.05,
    )
    ds.write_parquet(str(out))
    return sum(pq.read_metadata(f).num_rows for f in out.glob("*.parquet"))
