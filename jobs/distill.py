"""Self-distillation of the judge: label synthetic pairs with the real-valued score, train the judge on them.

Runs once, after round 1's responses exist and before round 1 is judged: the judge labels M of those
(prompt, response) pairs with its expected score, whatever `judge.scoring` says (the labels are the
real-valued scores the paper distils), and training continues from the judge checkpoint on them into
`checkpoints/judge-distilled`. That judge then scores every round, so the judge stays fixed across
rounds as in the paper. Target format and why: core/distill.py.

Two committed stages, so a restart resumes: `judge-distill/` (the labelled pairs) and the training stage.
"""

from __future__ import annotations

from pathlib import Path

from alma.actors.callers import JudgeCaller
from alma.core.distill import pick_responses, sample_label, stochastic_round
from alma.core.judge_prompt import judge_messages, judge_target
from alma.core.manifest import StageWriter
from alma.jobs.initial_models import train_stage
from alma.jobs.run_context import RunContext
from alma.core.tables import read_table
from alma.jobs.streaming import stream_through

DISTILLED = "judge-distilled"


def label_stage(ctx: RunContext, responses: Path, judge: Path) -> Path:
    """Commit judge-distill/: M sampled round responses with the expected score and distribution of the judge
    at `judge` (its app deployed by the stage, jobs/apps.py, with the run's rubric)."""
    out = ctx.layout.distill_labels

    def build(w: StageWriter) -> None:
        rows = read_table(responses).to_pylist()
        picked = pick_responses(rows, ctx.cfg.judge.distill_responses, ctx.cfg.seed)
        ctx.apps.judge(ctx.stage_location(judge))
        streamed = stream_through(picked, JudgeCaller, ctx.cfg, w.path, {"mode": "expected"})
        w.rows = streamed.rows
        w.info = {"judge": str(judge), "asked": ctx.cfg.judge.distill_responses, "available": len(rows),
                  **streamed.info()}

    ctx.stage(out, "judge distill labels", build, kind="distill-labels")
    return out


def distill_rows(ctx: RunContext, labels: Path, rubric: str) -> list[dict]:
    """Judge training rows: each labelled pair with a label drawn from its distribution, or its stochastically
    rounded score (judge.distill_target), as the target."""
    rows = []
    # In a fixed order, whatever order Ray Data wrote the label files in, so that training is reproducible.
    labelled = sorted(read_table(labels).to_pylist(), key=lambda r: (r["prompt_id"], r["checkpoint"], r["sample"]))
    for row in labelled:
        key = f"{ctx.cfg.seed}-{row['prompt_id']}-{row['checkpoint']}-{row['sample']}"
        if ctx.cfg.judge.distill_target == "sampled":
            target = sample_label(row["distribution"], key)
        else:
            target = stochastic_round(row["score"], key)
        rows.append({"prompt": judge_messages(row["prompt"], row["response"], rubric),
                     "completion": judge_target(target, ctx.cfg.judge.answer_prefix), "source": "distill"})
    return rows


def self_distill(ctx: RunContext, responses: Path, judge: Path, rubric: str) -> Path:
    """The judge to score rounds with: `judge` itself when judge.distill_responses is 0, else the distilled one."""
    if ctx.cfg.judge.distill_responses == 0:
        return judge
    labels = label_stage(ctx, responses, judge)
    return train_stage(ctx, DISTILLED, judge, distill_rows(ctx, labels, rubric), ctx.cfg.seed, judge=True)
