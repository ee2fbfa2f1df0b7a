"""vLLM vs transformers on the same model, prompts and settings: tokens/s, judgments/s, and the generator
deployment vs the vLLM engine it wraps.

    python benchmarks/vllm_vs_transformers.py                           # SmolLM2-135M on CPU, batch 64
    python benchmarks/vllm_vs_transformers.py --model builtin:tiny      # the random-init test model
    python benchmarks/vllm_vs_transformers.py --device cuda --no-serve  # on a GPU, no Ray (gpu_check.sh)

One run, side by side, the same calls for every path:

- generation: `generate` of --batch chat prompts (the bundled seed and eval prompts) x 1 sample of up to
  --max-new-tokens tokens (T 0.8, top-p 0.95, seeded), in one call;
- judging: `score_distribution` of --judgments judge conversations (the bundled judge pairs), one call;
- paths: the transformers engine and the vLLM engine, called directly, measured in alternation
  (--repeats rounds, medians reported, so a busy spell of a shared machine does not favour one); then
  (unless --no-serve) the generator deployment (actors/generator.py) on vLLM in a private local Ray on
  127.0.0.1, fed as the rounds feed it (concurrent requests of --request-batch prompts), alternating
  with the direct vLLM engine again. Generation through Serve only: the judge deployment calls the
  same engine methods.

Tokens are counted by re-encoding each completion with the model's tokenizer, the same way for every
engine, so an engine that stops sequences at their end-of-text token is not charged for padding. Each
measurement follows a short warm-up call. `--model random:smollm2-shape` is SmolLM2-135M's architecture
(30 layers, hidden 576) with random weights and the tiny model's 3k vocabulary, built offline: a
135M-class cost for machines that lack the real weights (sequences rarely end early, so each produces
about --max-new-tokens tokens). The table's last line is the headline ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from common import bundled_prompt_texts, progress, work_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RANDOM_SMOLLM2 = "random:smollm2-shape"
ANSWER_PREFIX = "Rating: [["


def _chat_prompts(count: int) -> list[list[dict[str, str]]]:
    texts = bundled_prompt_texts()
    return [[{"role": "user", "content": texts[i % len(texts)]}] for i in range(count)]


def _judge_conversations(count: int) -> list[list[dict[str, str]]]:
    from alma.core.judge_prompt import SCALE, judge_messages
    from alma.core.seeds import bundled, load_judge

    rows = load_judge(bundled("judge.jsonl"))
    return [judge_messages(rows[i % len(rows)].prompt, rows[i % len(rows)].response, SCALE) for i in range(count)]


def _model_folder(spec: str, cache: Path) -> Path:
    from alma.checkpoints import resolve_model

    if spec != RANDOM_SMOLLM2:
        return resolve_model(spec).resolve()
    folder = cache / "smollm2-shape"
    if not (folder / "config.json").is_file():
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(resolve_model("builtin:tiny", cache))
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                             num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                             tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


class Bench:
    """The prompts, the timed calls, and token counting."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        from transformers import AutoTokenizer

        from alma.core.engine_api import Sampling

        self.prompts = _chat_prompts(args.batch)
        self.conversations = _judge_conversations(args.judgments)
        self.sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=0.8, top_p=0.95, seed=0)
        self.warmup = Sampling(max_new_tokens=8, temperature=0.8, top_p=0.95, seed=1)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)

    def tokens(self, completions: list[list[str]]) -> int:
        return sum(len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                   for row in completions for text in row)

    def warm(self, engine) -> None:
        from alma.core.scoring import SCORE_LABELS

        engine.generate(self.prompts[:4], 1, self.warmup)
        engine.score_distribution(self.conversations[:4], ANSWER_PREFIX, SCORE_LABELS)

    def generation(self, generate) -> dict[str, float]:
        started = time.perf_counter()
        tokens = self.tokens(generate(self.prompts, self.sampling))
        seconds = time.perf_counter() - started
        return {"tokens": tokens, "seconds": seconds, "per_s": tokens / seconds}

    def judging(self, engine) -> dict[str, float]:
        from alma.core.scoring import SCORE_LABELS

        started = time.perf_counter()
        engine.score_distribution(self.conversations, ANSWER_PREFIX, SCORE_LABELS)
        seconds = time.perf_counter() - started
        return {"judgments": len(self.conversations), "seconds": seconds, "per_s": len(self.conversations) / seconds}


class ServedGenerator:
    """The generator deployment on vLLM in a private local Ray, called as Ray Data's callers call it."""

    def __init__(self, folder: Path, args: argparse.Namespace, work: Path) -> None:
        from ray import serve

        from alma.actors.generator import Generator
        from alma.engines.factory import EngineSettings
        from alma.cluster.local import start_ray

        self._ctx = start_ray(work)
        serve.start(proxy_location="Disabled")
        app = Generator.options(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64).bind(
            EngineSettings("vllm", args.device, args.dtype, args.batch, args.threads,
                           vllm={"kv_cache_gib": args.kv_cache_gib}))
        self._handle = serve.run(app, name="bench-generator", route_prefix=None).options(
            multiplexed_model_id=str(folder))
        self._request_batch = args.request_batch

    def generate(self, prompts: list, sampling) -> list[list[str]]:
        from dataclasses import asdict

        parts = [prompts[i : i + self._request_batch] for i in range(0, len(prompts), self._request_batch)]
        responses = [self._handle.generate.remote(part, 1, asdict(sampling)) for part in parts]
        return [row for response in responses for row in response.result(timeout_s=900)["completions"]]

    def close(self) -> None:
        from ray import serve

        from alma.cluster.local import stop_ray

        serve.shutdown()
        stop_ray(self._ctx)


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {**runs[0], "per_s": statistics.median(run["per_s"] for run in runs), "runs": len(runs)}


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin:smollm2-135m",
                        help=f"checkpoint folder, builtin:... or {RANDOM_SMOLLM2}")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="engine dtype (float32: the presets'; bfloat16 is slow on CPUs without bf16 units)")
    parser.add_argument("--batch", type=int, default=64, help="prompts per generate call (1 sample each)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--judgments", type=int, default=64, help="judge conversations per score call")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per engine (default: all)")
    parser.add_argument("--kv-cache-gib", type=float, default=2.0, help="vLLM KV cache, GiB")
    parser.add_argument("--request-batch", type=int, default=8, help="prompts per deployment request")
    parser.add_argument("--no-serve", action="store_true", help="skip the Serve deployment (no Ray needed)")
    parser.add_argument("--out", metavar="FILE", help="also write the numbers as JSON to FILE")
    args = parser.parse_args(argv)

    from alma.engines.factory import EngineSettings, load_engine, vllm_platform
    from alma.engines.transformers_engine import TransformersEngine

    work = work_dir()
    folder = _model_folder(args.model, work)
    bench = Bench(args, folder)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ("tf_gen", "tf_judge", "vllm_gen", "vllm_judge",
                                                                    "pair_vllm_gen", "serve_gen")}
    notes: dict[str, str] = {}

    progress(f"transformers on {args.device}: {folder}")
    tf = TransformersEngine(folder, dtype=args.dtype, threads=args.threads or os.cpu_count(),
                            max_batch_size=args.batch, device=args.device)
    bench.warm(tf)
    platform, problem = vllm_platform()
    if problem is None and platform != args.device:
        problem = f"the installed vLLM build runs on {platform}, not {args.device}"
    vllm = None
    if problem is not None:
        notes["vllm"] = notes["serve"] = f"not run: {problem}"
    else:
        progress(f"vLLM {platform}: engine start")
        started = time.perf_counter()
        vllm = load_engine(folder, EngineSettings("vllm", args.device, args.dtype, args.batch, args.threads,
                                                  vllm={"kv_cache_gib": args.kv_cache_gib}))
        notes["vllm_start_s"] = f"{time.perf_counter() - started:.1f}"
        bench.warm(vllm)
    for round_ in range(args.repeats):
        progress(f"round {round_ + 1}/{args.repeats}: engines called directly")
        runs["tf_gen"].append(bench.generation(lambda p, s: tf.generate(p, 1, s)))
        runs["tf_judge"].append(bench.judging(tf))
        if vllm is not None:
            runs["vllm_gen"].append(bench.generation(lambda p, s: vllm.generate(p, 1, s)))
            runs["vllm_judge"].append(bench.judging(vllm))
    tf.close()
    if vllm is not None and args.no_serve:
        notes["serve"] = "skipped (--no-serve)"
    elif vllm is not None:
        progress("vLLM through the generator deployment: Ray, replica, engine start")
        served = ServedGenerator(folder, args, work)
        try:
            served.generate(bench.prompts[:8], bench.warmup)
            for round_ in range(args.repeats):
                progress(f"round {round_ + 1}/{args.repeats}: deployment vs engine")
                runs["serve_gen"].append(bench.generation(served.generate))
                runs["pair_vllm_gen"].append(bench.generation(lambda p, s: vllm.generate(p, 1, s)))
        finally:
            served.close()
    if vllm is not None:
        vllm.close()

    med = {name: _median(found) for name, found in runs.items() if found}
    print(f"\nmodel {args.model} ({folder.name}), {args.device}, {args.dtype}, batch {args.batch} x "
          f"{args.max_new_tokens} new tokens, {args.judgments} judgments, median of {args.repeats}")
    print(f"{'path':<34}{'tok/s':>10}{'judgments/s':>13}")
    print("-" * 57)
    rows = [("transformers engine", "tf_gen", "tf_judge", None), ("vLLM engine", "vllm_gen", "vllm_judge", "vllm"),
            ("vLLM via Serve generator", "serve_gen", None, "serve"),
            ("vLLM engine (paired with Serve)", "pair_vllm_gen", None, "serve")]
    for name, gen, judged, note in rows:
        if gen not in med:
            print(f"{name:<34}{notes[note]}")
            continue
        per_judgment = f"{med[judged]['per_s']:>13.2f}" if judged else f"{'-':>13}"
        print(f"{name:<34}{med[gen]['per_s']:>10.1f}{per_judgment}")
    rate = {key: value["per_s"] for key, value in med.items()}
    if "vllm_start_s" in notes:
        print(f"vLLM engine start {notes['vllm_start_s']} s")
    print(f"judgments/s vLLM / transformers: {_ratio(rate.get('vllm_judge'), rate.get('tf_judge'))}; "
          f"tokens/s Serve / vLLM engine: {_ratio(rate.get('serve_gen'), rate.get('pair_vllm_gen'))}")
    print(f"tokens/s vLLM / transformers: {_ratio(rate.get('vllm_gen'), rate.get('tf_gen'))}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs, "notes": notes}, indent=2))
    return 0


if __name__ == "__main__":  # the guard vLLM's spawned engine processes need
    raise SystemExit(main())
