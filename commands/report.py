"""`alma report RUN`: report.html and the same plots as PNG files in report/, from the run folder alone. The
run ends by writing it. The plots are commands/report_plots.py, the page commands/report_html.py, and the throughput
table (also in summary.json) jobs/throughput.py.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from alma.core import report_data
from alma.core.console import say
from alma.core.errors import RunStateError
from alma.core.manifest import read_manifest
from alma.core.progress import format_duration
from alma.core.run_layout import RunLayout
from alma.commands.report_html import render_html
from alma.commands.report_plots import render_plots
from alma.core.run_layout import committed_stages
from alma.core.tables import data_files
from alma.jobs.throughput import run_throughput

log = logging.getLogger("alma")


def _scores_table(folder: Path, columns: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in data_files(folder):
        rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def load_rounds(run_dir: Path) -> list[report_data.RoundInput]:
    """Every round whose scores are committed, with its best-of-N rows and its draw's diversity report."""
    rounds = []
    for rd in RunLayout(run_dir).rounds():
        if read_manifest(rd.scores) is None:
            continue
        best = read_manifest(rd.best)
        draw = read_manifest(rd.draw)
        responses = read_manifest(rd.responses)
        rounds.append(report_data.RoundInput(
            round=rd.number,
            scores=_scores_table(rd.scores, ["prompt_id", "checkpoint", "score"]),
            best=_scores_table(rd.best, ["prompt_id", "checkpoint", "score"]) if best else [],
            diversity=(draw.info.get("diversity") or {}) if draw else {},
            split=(responses.info.get("split") or {}) if responses else {}))
    return rounds


def _facts(run_dir: Path, summary: dict | None, data: dict) -> list[tuple[str, str]]:
    try:
        config = yaml.safe_load(RunLayout(run_dir).config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    facts = [("run", str(run_dir)), ("name", str(config.get("name", "-"))),
             ("base model", str((config.get("model") or {}).get("base", "-"))),
             ("rounds", f"{len(data['rounds'])} with scores of {config.get('rounds', '?')}")]
    if summary:
        facts += [("wall time", format_duration(float(summary.get("wall_seconds") or 0))),
                  ("judge", str(summary.get("judge", "-"))), ("final checkpoint", str(summary.get("final_checkpoint")))]
    else:
        facts.append(("state", "no summary.json yet: the run has not finished (or was stopped)"))
    facts.append(("written", time.strftime("%Y-%m-%d %H:%M:%S")))
    return facts


def build_report_data(run_dir: Path) -> dict[str, Any]:
    summary = _summary(run_dir) or {}
    if "throughput" not in summary:  # a run still going (or stopped): measure what is committed so far
        summary = {**summary, "throughput": run_throughput(run_dir)}
    stages = [{k: v for k, v in s.items() if k != "info"} for s in committed_stages(run_dir)]
    return report_data.report(load_rounds(run_dir), stages, summary, _model_eval(run_dir))


def _model_eval(run_dir: Path) -> dict | None:
    """`alma eval`'s result for this run, when it has one (eval/model_eval.json)."""
    try:
        return json.loads(RunLayout(run_dir).model_eval.read_text())
    except (OSError, ValueError):
        return None


def _summary(run_dir: Path) -> dict | None:
    try:
        return json.loads(RunLayout(run_dir).summary.read_text())
    except (OSError, ValueError):
        return None


def write_report(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Write report.html and report/*.png into `out` (default: the run folder); returns their paths,
    report.html first."""
    run_dir = Path(run_dir)
    if not RunLayout(run_dir).config.is_file():
        raise RunStateError(f"{run_dir}: not a run folder (no config.yaml)")
    out = Path(out) if out is not None else run_dir
    data = build_report_data(run_dir)
    plots = render_plots(data)
    folder = RunLayout(out).report_dir
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in plots.items():
        (folder / name).write_bytes(png)
        paths.append(folder / name)
    page = RunLayout(out).report_html
    page.write_text(render_html(data, plots, _facts(run_dir, _summary(run_dir), data)), encoding="utf-8")
    return [page, *paths]


def finish_run_report(ctx) -> Path | None:
    """The run's last step: write the report and publish it beside the run. A report that cannot be drawn
    is said and logged, never a failed run: every stage is committed by then."""
    try:
        paths = write_report(ctx.run_dir)
        if ctx.remote is not None:
            for path in paths:
                ctx.remote.upload(path)
    except Exception as e:  # the report is a view of committed stages; `alma report RUN` retries it
        log.exception("report")
        say(f"report: not written ({type(e).__name__}: {e}); `alma report {ctx.run_dir}` retries")
        return None
    say(f"report: {paths[0]}" + (f" (and {ctx.location})" if ctx.remote is not None else ""))
    return paths[0]


def report_main(run_dir: str, out: str | None = None) -> int:
    paths = write_report(Path(run_dir), Path(out) if out else None)
    print(f"{paths[0]} ({len(paths) - 1} plots in {RunLayout(paths[0].parent).report_dir})")
    return 0
