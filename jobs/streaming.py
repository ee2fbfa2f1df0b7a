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


def stream_through(rows: list[dict[str, Any]] | Path, caller: type, cfg: AlmaConfig, out: Path,
                   caller_kwargs: dict[str, Any] | None = None) -> int:
    """Map `rows` (a list of dicts, or a Parquet folder) through `caller` actors into `out`; row count."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = sys.stderr.isatty()
    ds = ray.data.read_parquet(str(rows)) if isinstance(rows, Path) else ray.data.from_items(rows)
    ds = ds.map_batches(
        caller,
        fn_constructor_kwargs=caller_kwargs or {},
        batch_size=cfg.serve.request_batch,
        compute=ray.data.ActorPoolStrategy(size=cfg.serve.data_concurrency),
        # Callers only wait on deployment handles; the deployments hold the compute.
        num_cpus=0.05,
    )
    ds.write_parquet(str(out))
    return sum(pq.read_metadata(f).num_rows for f in out.glob("*.parquet"))
