"""The run's throughput, recorded in summary.json by the driver and shown by the report: rows/s and tokens/s
per committed stage. Tokens are counted with the run's tokenizer on what each stage produced or read
(generated responses, judged pairs, embedded prompts; TRL's own count for trainings), on an even sample of
at most TOKEN_SAMPLE rows per stage scaled to all of them, so a large run's summary costs seconds.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alma.core import report_data
from alma.core.run_layout import RunLayout
from alma.core.run_layout import committed_stages
from alma.core.tables import data_files

log = logging.getLogger("alma")

TOKEN_SAMPLE = 2000


def _tokenizer(run_dir: Path):
    """The run's tokenizer (every checkpoint has the base model's), or None when none is committed yet."""
    from tokenizers import Tokenizer

    for path in sorted(RunLayout(run_dir).checkpoints.glob("*/tokenizer.json")):
        return Tokenizer.from_file(str(path))
    return None


def _token_source(run_dir: Path, folder: str, kind: str) -> tuple[str, list[Path], list[str]] | None:
    """What a stage's tokens are (generated, judged, embedded), where they are and in which columns."""
    layout, path = RunLayout(run_dir), run_dir / folder
    if kind == "pool":
        return "generated", data_files(layout.pool_raw), ["response"]
    if kind == "pool-embeddings":
        return "embedded", [layout.pool_file], ["prompt"]
    if kind == "responses":
        return "generated", data_files(path), ["response"]
    if kind in ("scores", "distill-labels"):
        return "judged", data_files(path), ["prompt", "response"]
    return None


def count_tokens(tokenizer, files: list[Path], columns: list[str], sample: int = TOKEN_SAMPLE) -> int:
    """Tokens in `columns` of the Parquet `files`: exact up to `sample` rows, else an even sample scaled up."""
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    rows = table.num_rows
    if rows == 0:
        return 0
    step = max(1, math.ceil(rows / sample))
    picked = table.take(list(range(0, rows, step)))
    texts = [str(v) for c in columns for v in picked[c].to_pylist() if v is not None]
    counted = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return round(counted * rows / picked.num_rows)


def run_throughput(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per committed stage: seconds, rows, rows/s, and where it has them tokens, tokens/s and what tokens."""
    run_dir = Path(run_dir)
    tokenizer = _tokenizer(run_dir)
    out = {}
    for stage in committed_stages(run_dir):
        info, tokens, of, seconds = stage["info"], None, None, None
        if stage["kind"] == "train" and info.get("last_num_tokens") is not None:
            # TRL's count of the tokens it trained on, over its own time (without Ray Train's start-up)
            tokens, of, seconds = int(info["last_num_tokens"]), "trained", info.get("seconds")
        elif tokenizer is not None:
            source = _token_source(run_dir, stage["folder"], stage["kind"])
            if source is not None and source[1]:
                try:
                    tokens, of = count_tokens(tokenizer, source[1], source[2]), source[0]
                except (OSError, KeyError, pa.ArrowException) as e:  # a layout this version does not know
                    log.warning("tokens of %s not counted: %s", stage["label"], e)
        entry = report_data.throughput(stage, tokens, seconds)
        if of is not None:
            entry["tokens_of"] = of
        if seconds:
            entry["train_seconds"] = seconds
        out[stage["label"]] = entry
    return out
