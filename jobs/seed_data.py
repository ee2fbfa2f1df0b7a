"""The rows `alma run` dropped from its seed files (seeds.drop_invalid): a rejects file in the run folder, one
line each, and one line saying so. What a data file holds (`alma data FILE`) is commands/data.py."""

from __future__ import annotations

import json
from pathlib import Path

from alma.core.console import say
from alma.core.manifest import write_text_atomic
from alma.core.run_layout import RunLayout
from alma.core.seeds import Reject, SeedSet

def rejects_line(reject: Reject) -> str:
    record = {"line": reject.line, "field": reject.field, "reason": reject.reason, "error": reject.error}
    try:
        return json.dumps({**record, "row": reject.row}, ensure_ascii=False, default=str)
    except RecursionError:  # decoded, yet too deep to encode again from here: keep the line as it was
        return json.dumps({**record, "row": reject.text}, ensure_ascii=False)


def write_rejects(run_dir: Path, name: str, seeds: SeedSet) -> Path:
    """<run>/seeds/rejects-<name>.jsonl: one row per dropped row (line, field, reason, error, row)."""
    path = RunLayout(run_dir).rejects(name)
    write_text_atomic(path, "".join(rejects_line(r) + "\n" for r in seeds.rejects))
    return path


def count_text(name: str, seeds: SeedSet) -> str:
    """'500 rows' (SFT), or '300 rows, 1180 triplets' when a judge row holds several."""
    kept = sum(seeds.layouts.values())
    return f"{seeds.rows} rows" if name == "sft" or len(seeds.examples) == kept else \
        f"{seeds.rows} rows, {len(seeds.examples)} triplets"


def report_drops(ctx, sets: dict[str, SeedSet]) -> None:
    """With seeds.drop_invalid, after the run folder is made: each set's rejects file, and one line saying so."""
    if not ctx.cfg.seeds.drop_invalid:
        return
    for name, seeds in sets.items():
        path = write_rejects(ctx.run_dir, name, seeds)
        if ctx.remote is not None:
            ctx.remote.upload(path)
        say(f"seed {name}: {count_text(name, seeds)}, {seeds.drop_text()}, rejects in {path}")
