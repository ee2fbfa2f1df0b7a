"""Multi-checkpoint sampling: N responses per prompt split over 3 checkpoints (the recipe's sft-1 / sft-2 /
latest mix) vs the same N from one checkpoint, through the generator deployment.

    python benchmarks/multi_checkpoint.py                                  # builtin:tiny, K=32 prompts, N=6
    python benchmarks/multi_checkpoint.py --model builtin:smollm2-135m --prompts 12
    python benchmarks/multi_checkpoint.py --prompts 64 --n 12 --repeats 3

The checkpoints are three folders holding the same weights (hard links), so the generator loads three
engines exactly as it does for three trained models, while the work per token stays the same: what is
measured is the cost of the split (per-checkpoint requests carry N/3 samples each, three engines share the
replica) and not a difference between models. Both sides run the responses stage's streaming
(jobs.streaming.stream_through) after every checkpoint is loaded in the replica; the first split stream,
which loads the other two engines, is reported separately as "cold". Sides alternate --repeats times;
medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from common import (
    add_model_argument,
    bench_config,
    chat_prompts,
    checkpoint_copies,
    generate_requests,
    print_table,
    progress,
    serving,
    stream,
    work_dir,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_argument(parser)
    parser.add_argument("--prompts", type=int, default=32, help="K: prompts per measurement")
    parser.add_argument("--n", type=int, default=6, help="N: responses per prompt (split 1:1:1 over 3 checkpoints)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repetitions; medians are reported")
    args = parser.parse_args(argv)

    from alma.core.selection import split_n
    from alma.checkpoints import resolve_model

    work = work_dir()
    cfg = bench_config(args.model, work, args.overrides)
    folder = resolve_model(cfg.model.base).resolve()
    paths = checkpoint_copies(folder, ["sft-1", "sft-2", "latest"], work)
    split = split_n(args.n, {name: 1.0 for name in paths})
    prompts = chat_prompts(args.prompts)
    one = generate_requests(prompts, {"sft-1": (paths["sft-1"], args.n)}, "bench")
    three = generate_requests(prompts, {name: (paths[name], split[name]) for name in paths}, "bench")
    single, multi = [], []
    with serving(cfg, work):
        progress("warming up: sft-1 loaded in the replica")
        stream(cfg, one[: cfg.serve.request_batch], work / "warmup")
        cold, _ = stream(cfg, three, work / "cold")
        progress(f"cold split stream (loads sft-2 and latest): {cold:.1f}s")
        for rep in range(args.repeats):
            single.append(stream(cfg, one, work / f"one-{rep}")[0])
            multi.append(stream(cfg, three, work / f"three-{rep}")[0])
            progress(f"repeat {rep + 1}: one checkpoint {single[-1]:.1f}s, three {multi[-1]:.1f}s")
    one_s, three_s = statistics.median(single), statistics.median(multi)
    responses = args.prompts * args.n
    print_table(
        f"multi-checkpoint: {args.model}, engine {cfg.model.engine}, K={args.prompts} prompts x N={args.n}, split "
        f"{split}, request batch {cfg.serve.request_batch}, medians of {args.repeats}",
        ["side", "responses", "seconds", "responses/s"],
        [["N from one checkpoint", responses, one_s, responses / one_s],
         ["N over three checkpoints", responses, three_s, responses / three_s],
         ["  three, cold (loads 2 engines)", responses, cold, responses / cold]],
        f"three checkpoints / one checkpoint time: {three_s / one_s:.2f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
