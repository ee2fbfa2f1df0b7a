"""Stream a table through a Serve deployment with Ray Data and write the result as Parquet.

Nothing is lost on the way: a caller returns every input row, as its results or as an error row
(actors/callers.py); the error rows go to `errors.parquet` in the output folder with their reason, and the
counts are checked to add up exactly (results + what the failed rows stood for = what was asked).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alma.actors.callers import ATTEMPTS, ERROR, ROWS_LOST
from alma.actors.nodes import CALLER_NODE, NODE_COLUMNS, REPLICA_NODE, count_nodes
from alma.config import AlmaConfig
from alma.core.batching import order_requests
from alma.core.errors import RunStateError
from alma.core.storage import is_uri, open_uri
from alma.core.tables import ERRORS_FILE, data_files
from alma.jobs.progress import watch_rows

# Stage inputs up to this many rows are read by the driver and handed to Ray Data in memory; larger ones
# are read by Ray Data's own read tasks, in parallel and without passing through the driver.
INLINE_ROWS = 200_000
CALLER_CPUS = 0.05  # a caller actor's CPU share: it only waits on deployment responses
_RAW = "_streamed"  # Ray Data's own output, split into results and errors before the stage commits


def data_module():
    """`ray.data` without its own progress bars: the driver prints one progress line per stage instead
    (jobs.progress: redrawn on a terminal, where Ray Data's bars would draw over it; throttled in logs)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # The high-memory detector repeats a 12-line warning every 30 s for any actor over the 0 bytes of memory
    # it requested (the callers hold ~130 MiB of Python): it would flood the job log of every stream.
    context.issue_detectors_config.high_memory_detector_config.detection_time_interval_s = -1
    # actor_fault_options are remote args, deprecated for Ray 2.64 with no named replacement yet: one
    # warning per stream would only flood the job log.
    warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    return ray.data


def retry_settings(cfg: AlmaConfig) -> dict[str, Any]:
    s = cfg.serve
    return {"retries": s.request_retries, "backoff_s": s.retry_backoff_s, "max_backoff_s": s.retry_backoff_max_s,
            "timeout_s": s.request_timeout_s}


def read_parquet(ray_data, files: list[str], location: str, columns: list[str] | None = None):
    """A Ray Data dataset of a committed stage's Parquet `files` (relative to the stage folder), read where
    any node can: by path on a shared volume, from the run's URI when the run folder is at one (Ray Data's
    read tasks, and the ones it starts to sample the files, go anywhere in the cluster)."""
    if is_uri(location):
        filesystem, root = open_uri(location)
        return ray_data.read_parquet([f"{root}/{f}" for f in files], filesystem=filesystem, columns=columns)
    return ray_data.read_parquet([str(Path(location) / f) for f in files], columns=columns)


def stage_dataset(ray_data, folder: Path, files: list[str], location: str, batch_size: int,
                  columns: list[str] | None = None):
    """A committed stage's Parquet `files` (relative to its `folder`) as a Ray Data dataset: handed over from
    the driver in blocks of whole batches when they hold at most INLINE_ROWS rows (no read tasks to start,
    and none to wait for a CPU), read by Ray Data's read tasks from `location` otherwise (read_parquet)."""
    if sum(pq.read_metadata(folder / f).num_rows for f in files) <= INLINE_ROWS:
        table = pa.concat_tables([pq.read_table(folder / f, columns=columns) for f in files])
        return ray_data.from_arrow(_blocks(table, batch_size))
    return read_parquet(ray_data, files, location, columns)


def on_driver_node() -> dict[str, Any]:
    """Ray Data's write tasks of a stage run where the stage's temporary folder is: the driver's node. On a
    shared volume any node would do; a run folder at a URI has its working copy on the driver's node only
    (the caller actors and the replicas still spread over the cluster; only their rows come back). They
    ask for no CPU: they move files, and a KubeRay head, where a Ray job's driver runs, offers none."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(
        ray.get_runtime_context().get_node_id(), soft=False)}


def actor_fault_options(cfg: AlmaConfig) -> dict[str, int]:
    """Bounded recovery of Ray Data's own actors: a dead actor is restarted and its task retried, at most
    serve.request_retries times (Ray Data's default is without limit). Ray 2.60 takes these as remote args
    of map_batches, which it marks deprecated (for 2.64) without a named replacement yet."""
    return {"max_restarts": cfg.serve.request_retries, "max_task_retries": cfg.serve.request_retries}


def actor_pool(ray_data, cfg: AlmaConfig):
    """serve.data_concurrency caller actors, each with serve.calls_per_actor calls in flight. A caller only
    waits on its deployment response, so threads are enough; one call at a time would leave the replica
    idle while Ray Data hands the actor its next batch and takes the last one's rows."""
    calls = cfg.serve.calls_per_actor
    return ray_data.ActorPoolStrategy(size=cfg.serve.data_concurrency, max_concurrent_calls_per_actor=calls,
                                      enable_true_multi_threading=calls > 1)


@dataclass(frozen=True)
class Streamed:
    rows: int  # result rows written
    errors: int  # input rows that failed permanently (in errors.parquet)
    rows_lost: int  # result rows those stood for
    retried_rows: int  # result rows that needed more than one attempt
    # Which node ran what: {"callers": {node id: rows}, "replicas": {node id: rows}} (Ray Data caller actors,
    # Serve replicas); empty for tables written before callers reported their nodes.
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)

    def info(self, under: str = "") -> dict[str, Any]:
        """For the stage's manifest; `under` is the output folder's path inside the stage folder."""
        out: dict[str, Any] = {"errors": self.errors, "retried_rows": self.retried_rows}
        if self.nodes:
            out["nodes"] = self.nodes
        if self.errors:
            out["errors_file"] = f"{under}/{ERRORS_FILE}" if under else ERRORS_FILE
            out["rows_lost"] = self.rows_lost
        return out


def stream_through(rows: list[dict[str, Any]] | Path, caller: type, cfg: AlmaConfig, out: Path,
                   caller_kwargs: dict[str, Any] | None = None, location: str | None = None) -> Streamed:
    """Map `rows` (a list of dicts, or a committed stage folder's result files, which Ray Data reads from
    `location`, its RunContext.stage_location, when they are too many for the driver) through `caller`
    actors into `out`."""
    ray_data = data_module()
    batch_size = cfg.serve.request_batch
    if isinstance(rows, Path):
        files = data_files(rows)
        expected = sum(_expected_in(f, caller.fan_out) for f in files)
        ds = stage_dataset(ray_data, rows, [f.relative_to(rows).as_posix() for f in files], location or str(rows),
                           batch_size)
    else:
        if caller.batch_group:
            rows, batch_size = order_requests(rows, caller.batch_group, caller.batch_unit, batch_size)
        ds = ray_data.from_items(rows)
        expected = sum(int(r[caller.fan_out]) for r in rows) if caller.fan_out else len(rows)
    ds = ds.map_batches(
        caller,
        fn_constructor_kwargs={"retry": retry_settings(cfg), **(caller_kwargs or {})},
        batch_size=batch_size,
        compute=actor_pool(ray_data, cfg),
        # Callers only wait on deployment handles; the deployments hold the compute. Spread over the nodes: a
        # lost node then takes only its share of the calls in flight with it.
        num_cpus=CALLER_CPUS,
        scheduling_strategy="SPREAD",
        **actor_fault_options(cfg),
    )
    raw = out / _RAW
    with watch_rows(raw, expected):
        ds.write_parquet(str(raw), ray_remote_args=on_driver_node())
    streamed = split_errors(raw, out, caller.results)
    shutil.rmtree(raw, ignore_errors=True)
    if streamed.rows + streamed.rows_lost != expected:
        raise RunStateError(f"{out}: {streamed.rows} result rows and {streamed.rows_lost} lost to errors, but "
                            f"{expected} were asked for; the stage is not committed")
    return streamed


def _blocks(table: pa.Table, batch_size: int, most: int = 200) -> list[pa.Table]:
    """`table` cut into whole calls' worth of rows, at most `most` pieces: one block would go to a single
    Ray Data actor, leaving the others (serve.data_concurrency) idle."""
    per = batch_size * max(1, -(-table.num_rows // (batch_size * most)))
    return [table.slice(i, per) for i in range(0, max(1, table.num_rows), per)]


def _expected_in(file: Path, fan_out: str | None) -> int:
    """Result rows a Parquet file's input rows stand for: one each (its footer's count), or the sum of their
    `fan_out` column."""
    if fan_out is None:
        return pq.read_metadata(file).num_rows
    return int(pc.sum(pq.read_table(file, columns=[fan_out])[fan_out]).as_py() or 0)


def split_errors(raw: Path, out: Path, results: tuple[str, ...] = ()) -> Streamed:
    """Move the result rows of each Parquet file in `raw` to a file of the same name in `out`, without the
    error columns, and the error rows (less the `results` columns they have no value for) to
    `out/errors.parquet`. One file at a time, so memory holds one block, plus the error rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = rows_lost = retried = 0
    errors: list[pa.Table] = []
    nodes: dict[str, list[str | None]] = {CALLER_NODE: [], REPLICA_NODE: []}
    for f in sorted(raw.glob("*.parquet")):
        table = pq.read_table(f)
        if table.num_rows == 0:  # an empty block may carry no columns at all
            continue
        for column in NODE_COLUMNS:
            if column in table.column_names:
                nodes[column].extend(table[column].to_pylist())
        table = table.drop_columns([c for c in NODE_COLUMNS if c in table.column_names])
        failed = pc.is_valid(table[ERROR])
        good = table.filter(pc.invert(failed))
        if good.num_rows:
            retried += int(pc.sum(pc.greater(good[ATTEMPTS], 1)).as_py() or 0)
            pq.write_table(good.drop_columns([ERROR, ATTEMPTS, ROWS_LOST]), out / f.name)
            rows += good.num_rows
        bad = table.filter(failed)
        if bad.num_rows:
            rows_lost += int(pc.sum(bad[ROWS_LOST]).as_py() or 0)
            errors.append(bad.drop_columns([c for c in results if c in bad.column_names]))
    if errors:
        pq.write_table(pa.concat_tables(errors, promote_options="default"), out / ERRORS_FILE)
    placement = {"callers": count_nodes(nodes[CALLER_NODE]), "replicas": count_nodes(nodes[REPLICA_NODE])}
    return Streamed(rows, sum(t.num_rows for t in errors), rows_lost, retried,
                    placement if any(placement.values()) else {})
