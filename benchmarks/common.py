"""What the pipeline benchmarks share: the config, prompts and checkpoints they run on, a private local Ray
with the run's Serve apps, one streamed generation or judging pass exactly as a round's stage does it
(jobs.streaming.stream_through), token counting, and the table they print.

Every benchmark measures its two sides in one process, on the same machine state, alternating them
when repeated; the load average is printed with the table because this machine is shared.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY, SMOLLM2 = "builtin:tiny", "builtin:smollm2-135m"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def add_model_argument(parser) -> None:
    parser.add_argument("--model", default=TINY,
                        help=f"base model: {TINY} (default, the random-init test model) or {SMOLLM2}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field of the preset (tiny, or smollm2-cpu for other models)")


def work_dir() -> Path:
    """A scratch folder for the benchmark's Ray files, checkpoints and streams, removed when it exits."""
    work = Path(tempfile.mkdtemp(prefix="alma-bench-"))
    atexit.register(shutil.rmtree, work, True)
    return work


def bench_config(model: str, work: Path, overrides: Sequence[str] = ()):
    from alma.config import load_config

    preset = "tiny" if model == TINY else "smollm2-cpu"
    return load_config(preset, overrides=[f"out_dir={work}", f"model.base={model}", *overrides])


def free_port() -> int:
    """An unused loopback port; the ephemeral range lies outside Ray's worker ports (10002-19999)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundled_prompt_texts() -> list[str]:
    """The bundled SFT prompts, then the bundled evaluation prompts."""
    import json

    from alma.core.seeds import bundled, load_sft

    texts = [e.user_prompt for e in load_sft(bundled("sft.jsonl"))]
    for line in bundled("eval_prompts.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts.append(json.loads(line)["prompt"])
    return texts


def chat_prompts(count: int) -> list[str]:
    """`count` user prompts: the bundled SFT and evaluation prompts, cycled, each made distinct."""
    texts = bundled_prompt_texts()
    return [f"{texts[i % len(texts)]} ({i})" for i in range(count)]


def checkpoint_copies(folder: Path, names: Sequence[str], work: Path) -> dict[str, Path]:
    """Folders holding `folder`'s files under other names: the generator loads each as its own checkpoint
    (an engine per folder), as it does sft-1, sft-2 and the previous round's model. Hard links, no copy."""
    out = {}
    for name in names:
        target = work / "checkpoints" / name
        if not target.exists():
            shutil.copytree(folder, target, copy_function=os.link)
        out[name] = target
    return out


@contextmanager
def serving(cfg, work: Path, judge: Path | None = None) -> Iterator[None]:
    """A private local Ray on 127.0.0.1 with the run's generator app (and judge app), stopped after."""
    from alma.cluster.local import start_ray, stop_ray
    from alma.cluster.serve_apps import deploy_generator, deploy_judge, start_serve
    from alma.core.judge_prompt import load_rubric

    ctx = start_ray(work, None, cfg.cluster.host, cfg.cluster.num_cpus)
    try:
        start_serve()
        deploy_generator(cfg)
        if judge is not None:
            deploy_judge(cfg, str(judge), load_rubric(cfg.judge.rubric))
        yield
    finally:
        stop_ray(ctx)


def generate_requests(prompts: Sequence[str], split: dict[str, tuple[Path, int]], tag: str) -> list[dict[str, Any]]:
    """The rows a round's responses stage streams: one per (prompt, checkpoint) with that checkpoint's n."""
    return [{"prompt_id": f"p{i}", "prompt": p, "mode": "chat", "checkpoint": name, "checkpoint_path": str(path),
             "n": n, "seed": f"{tag}-{i}-{name}"}
            for i, p in enumerate(prompts) for name, (path, n) in split.items() if n > 0]


def stream(cfg, rows, out: Path, caller: str = "generate") -> tuple[float, Path]:
    """Seconds to stream `rows` through the generator (or judge) deployment into `out`, as a stage does."""
    from alma.actors.callers import GenerateCaller, JudgeCaller
    from alma.jobs.streaming import stream_through

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    if caller == "generate":
        stream_through(rows, GenerateCaller, cfg, out, {"sampling": cfg.round.sampling.model_dump()})
    else:
        stream_through(rows, JudgeCaller, cfg, out)
    return time.perf_counter() - started, out


class TokenCounter:
    """Tokens of completions, re-encoded with the model's tokenizer: the same count for every side."""

    def __init__(self, model_folder: Path):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_folder / "tokenizer.json"))

    def __call__(self, texts: Sequence[str]) -> int:
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False))


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """b of y ~ x^b: least squares on log y vs log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def print_table(title: str, head: Sequence[str], rows: Sequence[Sequence[Any]], headline: str) -> None:
    """The table on stdout; its last line is the headline."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]
    print(title)
    print(f"({load_average()})")
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))))
    for r in cells:
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
    print(headline)
