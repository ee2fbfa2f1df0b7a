"""What a base model costs on this machine: builtin:gemma3-270m (Gemma 3 270M, a real base model) beside
builtin:smollm2-135m (SmolLM2-135M-Instruct, the presets' model), measured in one process, one after the other.

    python benchmarks/base_model_cost.py                         # both models, ~10 min of CPU on 2 cores
    python benchmarks/base_model_cost.py --cache ~/.cache/alma   # reuse built folders (no build time then)
    python benchmarks/base_model_cost.py --no-vllm --out /tmp/cost.json

Per model: the one-off build into the cache (GGUF -> safetensors; skipped where --cache already holds it);
the transformers engine's load in float32 and bfloat16; its generation tokens/s (`generate` of --batches
chat prompts, the bundled seed and eval prompts, 1 sample each, up to --max-new-tokens tokens, T 0.8,
seeded, after a 4-token warm-up) in both dtypes; the vLLM CPU engine's load and tokens/s at the largest
batch (float32, eager, a 1 GiB KV cache; an error is reported, not raised); and TRL SFT optimizer steps
at batch --train-batch x --train-tokens tokens (float32, AdamW, --threads threads), the first (which
allocates the optimizer state) and the second reported apart. Tokens are counted by re-encoding the
completions with the model's tokenizer. The last line is the headline ratio (Gemma / SmolLM2).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import time
from pathlib import Path

from common import SMOLLM2, TokenCounter, chat_prompts, load_average, print_table, progress, work_dir

GEMMA = "builtin:gemma3-270m"
DTYPES = ("float32", "bfloat16")


def _build(spec: str, cache: Path) -> tuple[Path, float | None]:
    from alma.checkpoints import resolve_model

    name = spec.removeprefix("builtin:")
    cached = (cache / "models" / name / "config.json").is_file()
    started = time.perf_counter()
    folder = resolve_model(spec, cache)
    return folder, None if cached else time.perf_counter() - started


def _generation(folder: Path, dtype: str, batches: list[int], max_new: int, threads: int,
                counter: TokenCounter) -> dict[str, float]:
    from alma.core.engine_api import Sampling
    from alma.engines.transformers_engine import TransformersEngine

    started = time.perf_counter()
    engine = TransformersEngine(folder, dtype=dtype, threads=threads, max_batch_size=max(batches))
    out = {"load_s": time.perf_counter() - started}
    engine.generate(chat_prompts(1), 1, Sampling(max_new_tokens=4, seed=0))
    for batch in batches:
        prompts = chat_prompts(batch)
        started, cpu = time.perf_counter(), time.process_time()
        texts = engine.generate(prompts, 1, Sampling(max_new_tokens=max_new, temperature=0.8, seed=1))
        seconds = time.perf_counter() - started
        out[f"cpu_s_b{batch}"] = time.process_time() - cpu
        out[f"tokens_b{batch}"] = counter([t[0] for t in texts])
        out[f"tok_s_b{batch}"] = out[f"tokens_b{batch}"] / seconds
        progress(f"  transformers {dtype} batch {batch}: {out[f'tok_s_b{batch}']:.1f} tok/s ({load_average()})")
    return out


def _vllm(folder: Path, batch: int, max_new: int, threads: int, kv_cache_gib: float,
          counter: TokenCounter) -> dict[str, object]:
    from alma.core.engine_api import Sampling
    from alma.engines.factory import EngineSettings, load_engine

    started = time.perf_counter()
    try:
        engine = load_engine(folder, EngineSettings("vllm", "cpu", "float32", batch, threads,
                                                    vllm={"kv_cache_gib": kv_cache_gib, "enforce_eager": True}))
    except Exception as e:  # what failed is the measurement here, not a reason to stop the others
        return {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
    out: dict[str, object] = {"load_s": time.perf_counter() - started}
    try:
        engine.generate(chat_prompts(1), 1, Sampling(max_new_tokens=4, seed=0))
        started = time.perf_counter()
        texts = engine.generate(chat_prompts(batch), 1, Sampling(max_new_tokens=max_new, temperature=0.8, seed=1))
        seconds = time.perf_counter() - started
        out[f"tokens_b{batch}"] = counter([t[0] for t in texts])
        out[f"tok_s_b{batch}"] = out[f"tokens_b{batch}"] / seconds
        out["sample"] = texts[0][0][:200]
    finally:
        engine.close()
    return out


def _train_steps(folder: Path, batch: int, tokens: int, steps: int, threads: int, work: Path) -> dict[str, float]:
    """`steps` TRL SFT steps on chats long enough to fill `tokens` (the trainer truncates them to it)."""
    import datasets
    import torch
    from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from alma.config import TrainConfig
    from alma.jobs.training import load_model, trainer_args

    torch.set_num_threads(threads)
    long_answer = " ".join(chat_prompts(40))
    rows = [{"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": long_answer}]}
            for p in chat_prompts(batch * steps)]
    train = TrainConfig(epochs=steps, batch_size=batch, max_length=tokens, learning_rate=5e-5, max_steps=steps)
    step_seconds: list[float] = []
    step_cpu_seconds: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            step_seconds.append(time.perf_counter() - self.started)
            step_cpu_seconds.append(time.process_time() - self.cpu)

    started = time.perf_counter()
    trainer = SFTTrainer(model=load_model(str(folder), False), args=SFTConfig(**trainer_args(train, str(work), 0)),
                         train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=AutoTokenizer.from_pretrained(str(folder)), callbacks=[StepTimer()])
    trainer.remove_callback(PrinterCallback)
    setup = time.perf_counter() - started
    trainer.train()
    logs = [h for h in trainer.state.log_history if "num_tokens" in h]
    return {"setup_s": setup, **{f"step{i + 1}_s": s for i, s in enumerate(step_seconds)},
            **{f"step{i + 1}_cpu_s": s for i, s in enumerate(step_cpu_seconds)},
            "tokens_per_step": logs[-1]["num_tokens"] / len(logs) if logs else 0.0}


def measure(spec: str, cache: Path, args, work: Path) -> dict[str, object]:
    progress(f"{spec}: build ({load_average()})")
    folder, build_s = _build(spec, cache)
    counter = TokenCounter(folder)
    result: dict[str, object] = {"build_s": build_s, "load": load_average()}
    for dtype in args.dtypes:
        result[dtype] = _generation(folder, dtype, args.batches, args.max_new_tokens, args.threads, counter)
        gc.collect()
    if args.vllm:
        progress(f"{spec}: vLLM ({load_average()})")
        result["vllm"] = _vllm(folder, max(args.batches), args.max_new_tokens, args.threads, args.kv_cache_gib,
                               counter)
        progress(f"  vLLM: {result['vllm']}")
        gc.collect()
    if args.train_steps:
        progress(f"{spec}: SFT steps ({load_average()})")
        result["train"] = _train_steps(folder, args.train_batch, args.train_tokens, args.train_steps, args.threads,
                                       work / spec[8:])
        progress(f"  train: {result['train']} ({load_average()})")
    result["load_after"] = load_average()
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, help="alma cache folder (default: a fresh one, so builds are timed)")
    parser.add_argument("--batches", default="4,16", help="generation batch sizes")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-tokens", type=int, default=256)
    parser.add_argument("--train-steps", type=int, default=2,
                        help="SFT steps (the first allocates AdamW's state); 0: no training")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="transformers engine dtypes ('': none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-vllm", dest="vllm", action="store_false", help="skip the vLLM CPU engine")
    parser.add_argument("--kv-cache-gib", type=float, default=1.0,
                        help="vLLM's KV cache, GiB (the engine's default, 1, is below the 1.13 GiB that Gemma's "
                             "32k context needs in float32, so vLLM refuses to start Gemma with it)")
    parser.add_argument("--only", choices=(GEMMA, SMOLLM2), help="measure one model only")
    parser.add_argument("--out", metavar="FILE", help="also write the numbers as JSON to FILE")
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    # vLLM-CPU takes its KV cache size from this variable (whole GiB) over the engine's own setting.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(math.ceil(args.kv_cache_gib)))

    work = work_dir()
    cache = args.cache or work / "cache"
    results = {spec: measure(spec, cache, args, work) for spec in (GEMMA, SMOLLM2) if args.only in (None, spec)}
    if args.only:
        print(json.dumps(results, indent=2))
        return 0

    big, last = max(args.batches), args.train_steps

    def row(label: str, key) -> list[object]:
        values = [key(results[spec]) for spec in (GEMMA, SMOLLM2)]
        ratio = values[0] / values[1] if all(isinstance(v, float) and v for v in values) else ""
        return [label, *("-" if v is None else v for v in values), ratio]

    def vllm(r, key):
        return r.get("vllm", {}).get(key, r.get("vllm", {}).get("error", "skipped")[:40])

    rows = [row("build s", lambda r: r["build_s"])]
    rows += [row(f"load s, {d}", lambda r, d=d: r[d]["load_s"]) for d in args.dtypes]
    rows += [row(f"{m}, {d}, batch {b}", lambda r, d=d, b=b, k=k: r[d][f"{k}_b{b}"])
             for d in args.dtypes for b in args.batches for m, k in (("tok/s", "tok_s"), ("CPU s", "cpu_s"))]
    if args.vllm:
        rows += [row("vLLM load s", lambda r: vllm(r, "load_s")),
                 row(f"vLLM tok/s, float32, batch {big}", lambda r: vllm(r, f"tok_s_b{big}"))]
    rows += [row(f"SFT step {i} {m} ({args.train_batch}x{args.train_tokens})", lambda r, i=i, k=k: r["train"][k % i])
             for i in range(1, last + 1) for m, k in (("s", "step%d_s"), ("CPU s", "step%d_cpu_s"))]
    gemma, smol = results[GEMMA], results[SMOLLM2]
    headline = "gemma3-270m / smollm2-135m:"
    if args.dtypes:
        d = args.dtypes[0]

        def per_token(r):
            return r[d][f"cpu_s_b{big}"] / r[d][f"tokens_b{big}"]

        headline += f" generation CPU s per token {per_token(gemma) / per_token(smol):.2f} ({d}, batch {big});"
    if last:
        headline += f" SFT step CPU s {gemma['train'][f'step{last}_cpu_s'] / smol['train'][f'step{last}_cpu_s']:.2f}"
    print_table(f"base model cost: {GEMMA} vs {SMOLLM2}, {args.threads} threads, {args.max_new_tokens} new tokens",
                ["measure", "gemma3-270m", "smollm2-135m", "gemma / smollm2"], rows, headline)
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "load_average": load_average(),
                                               "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
