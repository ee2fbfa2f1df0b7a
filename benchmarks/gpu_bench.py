"""The transformers engine and TRL's SFT training against the chip's own limits: one process, no Ray, no vLLM.

    python benchmarks/gpu_bench.py --json out.json                   # on a GPU; benchmarks/gpu_check.sh runs it
    ALMA_GPU_CHECK_DEVICE=cpu python benchmarks/gpu_bench.py --batches 4 --max-new-tokens 16 --judgments 8 \\
        --steps 4 --train-batch 4 --seconds 120                     # a dry run on a CPU (builtin:tiny)

The model (--model auto) is SmolLM2-135M when its weights are on the machine (builtin:smollm2-135m), else
SmolLM2's architecture with random weights built offline (random:smollm2-shape, see vllm_vs_transformers.py);
on a CPU, builtin:tiny. Measured, in this order (the parts that cannot fail to start first, the compile last):

1. generation: alma's transformers engine, one `generate` call of B chat prompts (the bundled seed and eval
   prompts) x 1 sample of up to --max-new-tokens tokens (T 0.8, top-p 0.95, seeded) for each B in
   --batches, after an 8-token warm-up; tokens are the completions re-encoded, each capped at
   --max-new-tokens (an engine is not charged for the padding after a sequence ends);
2. judging: core.judge_modes.judge in 'expected' mode (the judge's default) over --judgments judge
   conversations (the bundled judge pairs), forward passes of max(--batches) rows;
3. SFT: TRL's SFTTrainer on the bundled SFT seeds with alma's jobs.training.trainer_args, in fp32 (alma's
   CPU path) and with bf16 autocast over fp32 weights (alma's GPU path, jobs.training.mixed_precision): --steps
   optimizer steps of --train-batch examples, timed from the end of step 2 (warm-up left out); tokens are
   TRL's own count of the tokens it trained on;
4. generation again with transformers' static KV cache, whose decoding step transformers compiles
   (torch.compile, on accelerators only); the warm-up is the full call, so the compile is paid there and
   reported apart.

Each throughput is also a share of the chip's limit, in the same unit:
- decoding is memory-bound: at most batch x bandwidth / bytes of weights tokens/s (each step reads every
  weight once; the KV cache's reads are left out, so the bound is optimistic);
- a judgment is one prefill, which is compute-bound: 2 x params FLOPs per prefill token, over the peak;
- training: MFU, 6 x params x trained tokens/s over the peak (attention FLOPs left out).
On cuda the limits default to an H200's (790 TFLOP/s dense bf16, 4.8 TB/s); on a CPU there are none unless
--peak-tflops / --bandwidth-gbs give them.

--seconds bounds the whole run: a part is skipped when the budget is spent before it starts, and stopped
(SIGALRM) when it runs out during it, each with the reason in the table and the JSON. The table's last
line is the headline; --json writes every number. Exit status 1 when a part failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import SMOLLM2, TINY, TokenCounter, load_average, progress, work_dir
from vllm_vs_transformers import ANSWER_PREFIX, RANDOM_SMOLLM2, _chat_prompts, _judge_conversations, _model_folder

H200_PEAK_TFLOPS = 790.0
H200_BANDWIDTH_GBS = 4800.0
WARMUP_STEPS = 2
# A part needs at least this much of the budget to start; a training stops this far from its end.
RESERVE_S = 5.0

Measure = Callable[[], tuple[float, float | None, dict[str, float], str]]


class OutOfTime(BaseException):
    """The run's time budget is spent. Not an Exception, so that library code catching those (torch.compile's
    fallbacks, a trainer's error handling) lets it through."""


class Skip(Exception):
    """A part that cannot run here, with the reason."""


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Raise OutOfTime inside the block when the budget runs out: Python handles the signal at its next
        bytecode, so a long generate, compile or training stops at its next step."""
        def stop(signum, frame):
            raise OutOfTime

        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.01))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@dataclass
class Row:
    """A line of the table: a throughput, the chip's limit in the same unit, and the numbers behind them."""

    key: str
    label: str
    unit: str
    status: str = "skipped"  # measured, skipped or failed
    reason: str = ""
    note: str = ""
    rate: float | None = None
    limit: float | None = None
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def share(self) -> float | None:
        return self.rate / self.limit if self.rate and self.limit else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share_of_limit": self.share}


def attempt(row: Row, budget: Budget, measure: Measure) -> Row:
    """Run one part within what is left of the budget; the row says what came of it."""
    if budget.left() < RESERVE_S:
        row.reason = f"the time budget ({budget.seconds:.0f} s) was spent before this part"
        return row
    progress(row.label)
    started = time.monotonic()
    try:
        with budget.guard():
            row.rate, row.limit, row.numbers, row.note = measure()
        row.status = "measured"
    except OutOfTime:
        row.reason = (f"the time budget ({budget.seconds:.0f} s) ran out "
                      f"{time.monotonic() - started:.0f} s into this part")
    except Skip as e:
        row.reason = str(e)
    except Exception as e:  # a part that breaks is reported, and the others still run
        row.status = "failed"
        row.reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
    return row


# ---- the parts -------------------------------------------------------------------------------------


def generation(engine, prompts: list, args: argparse.Namespace, count: TokenCounter, weight_bytes: int,
               bandwidth: float | None, static: bool) -> Measure:
    def measure() -> tuple[float, float | None, dict[str, float], str]:
        from alma.core.engine_api import Sampling

        sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=0.8, top_p=0.95, seed=0)
        note = ""
        with _static_cache(engine.model, static):
            started = time.perf_counter()
            # A static cache's compiled step is specific to its shape: warm up with the very call measured.
            engine.generate(prompts, 1, sampling if static else Sampling(max_new_tokens=8, seed=1))
            warmup = time.perf_counter() - started
            started = time.perf_counter()
            completions = engine.generate(prompts, 1, sampling)
            seconds = time.perf_counter() - started
            if static:
                # transformers keeps the compiled forward it decodes with on the model.
                note = "decoding step compiled" if hasattr(engine.model, "_compiled_call") else "not compiled"
                if engine.device.type == "cpu":
                    note += " (transformers compiles on accelerators only)"
        # Re-encoding can split a random model's text into more tokens than it sampled: cap each at what it could.
        tokens = sum(min(count([row[0]]), args.max_new_tokens) for row in completions)
        if not tokens:
            raise ValueError("the completions are empty")
        limit = len(prompts) * bandwidth / weight_bytes if bandwidth else None
        return tokens / seconds, limit, {"batch": len(prompts), "tokens": tokens, "seconds": seconds,
                                         "warmup_s": warmup}, note

    return measure


@contextmanager
def _static_cache(model, static: bool) -> Iterator[None]:
    """transformers' static KV cache for the block: the engine's GenerationConfig leaves the cache unset, so
    generate takes it from the model's generation config."""
    if not static:
        yield
        return
    model.generation_config.cache_implementation = "static"
    try:
        yield
    finally:
        model.generation_config.cache_implementation = None


def judging(engine, conversations: list, params: int, peak: float | None) -> Measure:
    def measure() -> tuple[float, float | None, dict[str, float], str]:
        from alma.core.judge_modes import judge
        from alma.core.judge_prompt import LABELS
        from alma.core.scoring import context_sequences

        judge(engine, conversations[:4], ANSWER_PREFIX, "expected")
        started = time.perf_counter()
        judgments = judge(engine, conversations, ANSWER_PREFIX, "expected")
        seconds = time.perf_counter() - started
        if not all(math.isfinite(j.score) for j in judgments):
            raise ValueError("a judgment's score is not finite")
        # Each judgment is one row per context of the label trie ("1" before "10"), each a full prefill.
        contexts = len(context_sequences(engine.encoder.label_trie(ANSWER_PREFIX, LABELS)))
        tokens = contexts * sum(len(engine.encoder.judge_ids(c, ANSWER_PREFIX)) for c in conversations)
        limit = peak / (2 * params * tokens / len(conversations)) if peak else None
        return len(conversations) / seconds, limit, {
            "judgments": len(conversations), "seconds": seconds, "prefill_tokens": tokens,
            "prefill_tokens_per_s": tokens / seconds}, ""

    return measure


def sft(folder: Path, args: argparse.Namespace, device: str, bf16: bool, peak: float | None, budget: Budget,
        scratch: Path) -> Measure:
    def measure() -> tuple[float, float | None, dict[str, float], str]:
        if bf16 and device == "cpu":
            raise Skip("bf16 mixed precision is the GPU path; on a CPU alma trains in fp32")
        try:
            import datasets
            from trl import SFTConfig, SFTTrainer

            from alma.config import TrainConfig
            from alma.jobs.training import load_model, trainer_args
        except ImportError as e:
            raise Skip(f"{e.name or e} does not import here (carry a wheelhouse: benchmarks/gpu_wheels.sh)")
        import torch
        from transformers import AutoTokenizer, PrinterCallback

        from alma.core.seeds import bundled, load_sft

        rows = [{"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.response}]}
                for e in load_sft(bundled("sft.jsonl"))]
        cfg = TrainConfig(max_steps=args.steps, batch_size=args.train_batch, max_length=args.train_max_length,
                          use_gpu=device == "cuda")
        model = load_model(str(folder), False)
        params = model.num_parameters()
        clock = _step_clock(budget, device == "cuda")
        precision = {"bf16": bf16, "fp16": False}
        trainer = SFTTrainer(model=model, args=SFTConfig(**{**trainer_args(cfg, str(scratch), 0), **precision}),
                             train_dataset=datasets.Dataset.from_list(rows),
                             processing_class=AutoTokenizer.from_pretrained(folder), callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # its log lines would land in the table's stdout
        try:
            trainer.train()
            counted = {h["step"]: h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h}
            losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        finally:
            del trainer, model
            if device == "cuda":
                torch.cuda.empty_cache()
        first, last = WARMUP_STEPS, max(clock.times, default=0)
        if last <= first or first not in counted or last not in counted:
            raise Skip(f"only {last} steps fit the time budget, too few to time after {first} warm-up steps")
        seconds = clock.times[last] - clock.times[first]
        tokens = counted[last] - counted[first]
        limit = peak / (6 * params) if peak else None
        return tokens / seconds, limit, {
            "steps": last - first, "seconds": seconds, "steps_per_s": (last - first) / seconds,
            "tokens": tokens, "tokens_per_step": tokens / (last - first), "params": params,
            "loss_last": losses[-1]}, ""

    return measure


def _step_clock(budget: Budget, cuda: bool):
    """A trainer callback noting when each optimizer step ends (after the GPU's queue has drained), and
    stopping the training cleanly before the budget's end."""
    import torch
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.times: dict[int, float] = {}

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.times[state.global_step] = time.perf_counter()
            if budget.left() < RESERVE_S:
                control.should_training_stop = True

    return StepClock()


# ---- the run ---------------------------------------------------------------------------------------


def choose_model(spec: str, device: str) -> str:
    if spec != "auto":
        return spec
    if device == "cpu":
        return TINY
    from alma.checkpoints import ModelError, resolve_model

    try:
        resolve_model(SMOLLM2)
        return SMOLLM2
    except ModelError:
        return RANDOM_SMOLLM2


def headline(rows: list[Row]) -> str:
    """The best decoding, the judging and the best training, each as a share of its limit where there is one."""
    done = [r for r in rows if r.status == "measured"]

    def best(prefix: str) -> Row | None:
        found = [r for r in done if r.key.startswith(prefix)]
        return max(found, key=lambda r: (r.share or 0.0, r.rate)) if found else None

    parts = []
    for prefix, what in (("generate", "decoding"), ("judge", "judging"), ("sft", "SFT")):
        row = best(prefix)
        if row is not None:
            share = f" = {_percent(row.share)} of {_limit_name(row.key)}" if row.share else ""
            parts.append(f"{what} ({row.label}) {_rate(row)}{share}")
    return "headline: " + ("; ".join(parts) if parts else "nothing measured (the reasons are above)")


def _limit_name(key: str) -> str:
    return "the bandwidth bound" if key.startswith("generate") else "peak (MFU)"


def _percent(share: float | None) -> str:
    return f"{100 * share:.3g}%" if share else "-"


def _rate(row: Row) -> str:
    return f"{row.rate:,.1f} {row.unit}"


def _detail(row: Row) -> str:
    if row.status != "measured":
        return f"{'FAILED' if row.status == 'failed' else 'skipped'}: {row.reason}"
    n = row.numbers
    if row.key.startswith("generate"):
        text = f"{n['tokens']:,.0f} tokens in {n['seconds']:.2f} s, warm-up {n['warmup_s']:.1f} s"
    elif row.key.startswith("judge"):
        text = f"{n['judgments']:.0f} in {n['seconds']:.2f} s, {n['prefill_tokens_per_s']:,.0f} prefill tok/s"
    else:
        text = f"{n['steps_per_s']:.2f} steps/s, {n['tokens_per_step']:,.0f} tokens/step, loss {n['loss_last']:.2f}"
    return f"{text}; {row.note}" if row.note else text


def print_rows(title: str, rows: list[Row], line: str) -> None:
    """The table on stdout, numbers right-aligned, the detail (or the reason a part did not run) last; its last
    line is the headline."""
    head = ("measurement", "rate", "chip limit", "of limit", "detail")
    cells = [(r.label, _rate(r) if r.rate else "-", f"{r.limit:,.0f}" if r.limit else "-", _percent(r.share),
              _detail(r)) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:-1])]
    print(title)
    print(f"({load_average()})")
    for cell in (head, *cells):
        numbers = "  ".join(v.rjust(w) for v, w in zip(cell[1:-1], widths[1:]))
        print(f"{cell[0].ljust(widths[0])}  {numbers}  {cell[-1]}")
    print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=os.environ.get("ALMA_GPU_CHECK_DEVICE", "cuda"), choices=("cuda", "cpu"),
                        help="default: $ALMA_GPU_CHECK_DEVICE, else cuda")
    parser.add_argument("--model", default="auto", help=f"auto, a checkpoint folder, builtin:... or {RANDOM_SMOLLM2}")
    parser.add_argument("--dtype", default=None, choices=("bfloat16", "float32"),
                        help="the engine's dtype (default bfloat16 on cuda, float32 on cpu)")
    parser.add_argument("--batches", default="64,256", help="prompts per generate call, comma-separated")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--judgments", type=int, default=512, help="judge conversations in the timed call")
    parser.add_argument("--steps", type=int, default=30, help="SFT optimizer steps (the first two are warm-up)")
    parser.add_argument("--train-batch", type=int, default=32, help="SFT examples per step")
    parser.add_argument("--train-max-length", type=int, default=512, help="SFT sequence length cap, tokens")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help=f"the chip's dense bf16 peak (default {H200_PEAK_TFLOPS:g} on cuda, an H200; none on cpu)")
    parser.add_argument("--bandwidth-gbs", type=float, default=None,
                        help=f"the chip's memory bandwidth, GB/s (default {H200_BANDWIDTH_GBS:g} on cuda; none on cpu)")
    parser.add_argument("--seconds", type=float, default=420, help="time budget of the whole run")
    parser.add_argument("--json", metavar="OUT", help="write every number to this file")
    args = parser.parse_args(argv)
    budget = Budget(args.seconds)

    import torch

    from alma.engines.transformers_engine import TransformersEngine

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("torch sees no CUDA device (ALMA_GPU_CHECK_DEVICE=cpu dry-runs on a CPU)")
    chip = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    peak_tflops = args.peak_tflops or (H200_PEAK_TFLOPS if device == "cuda" else None)
    bandwidth_gbs = args.bandwidth_gbs or (H200_BANDWIDTH_GBS if device == "cuda" else None)
    peak = peak_tflops * 1e12 if peak_tflops else None
    bandwidth = bandwidth_gbs * 1e9 if bandwidth_gbs else None
    batches = [int(b) for b in args.batches.split(",")]

    work = work_dir()
    spec = choose_model(args.model, device)
    folder = _model_folder(spec, work)
    progress(f"{spec} on {chip}: {folder}")
    engine = TransformersEngine(folder, dtype=dtype, threads=args.threads, max_batch_size=max(batches), device=device)
    params = engine.model.num_parameters()
    weight_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    count = TokenCounter(folder)
    conversations = _judge_conversations(args.judgments)
    static = "static KV cache + torch.compile" if device == "cuda" else "static KV cache"

    rows: list[Row] = []
    for batch in batches:
        row = Row(f"generate_plain_b{batch}", f"generate, batch {batch}", "tok/s")
        rows.append(attempt(row, budget, generation(engine, _chat_prompts(batch), args, count, weight_bytes,
                                                    bandwidth, static=False)))
    rows.append(attempt(Row("judge_expected", f"judge 'expected', {args.judgments}", "judgments/s"), budget,
                        judging(engine, conversations, params, peak)))
    for key, label, bf16 in (("sft_fp32", "SFT, fp32 (alma on a CPU)", False),
                             ("sft_bf16", "SFT, bf16 autocast (alma on a GPU)", True)):
        rows.append(attempt(Row(key, label, "tok/s"), budget,
                            sft(folder, args, device, bf16, peak, budget, work / key)))
    for batch in batches:
        row = Row(f"generate_static_b{batch}", f"generate, {static}, batch {batch}", "tok/s")
        rows.append(attempt(row, budget, generation(engine, _chat_prompts(batch), args, count, weight_bytes,
                                                    bandwidth, static=True)))
    engine.close()

    limits = (f"peak {peak / 1e12:g} TFLOP/s" if peak else "no peak given") + ", " + (
        f"bandwidth {bandwidth / 1e9:g} GB/s" if bandwidth else "no bandwidth given")
    if device == "cuda" and "H200" not in chip and not (args.peak_tflops and args.bandwidth_gbs):
        limits += " (an H200's: pass --peak-tflops and --bandwidth-gbs for this chip)"
    wall = args.seconds - budget.left()
    title = (f"gpu_bench: {spec} ({params / 1e6:.1f}M params, {dtype}) on {chip}; {limits}; "
             f"{args.max_new_tokens} new tokens; {wall:.0f} of {args.seconds:.0f} s")
    line = headline(rows)
    print_rows(title, rows, line)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": device, "chip": chip, "model": spec, "model_folder": str(folder), "dtype": dtype,
            "params": params, "weight_bytes": weight_bytes,
            "limits": {"peak_flops": peak, "bandwidth_bytes_per_s": bandwidth},
            "budget_s": args.seconds, "wall_s": wall, "args": vars(args),
            "rows": [r.as_dict() for r in rows], "headline": line}, indent=2) + "\n")
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
