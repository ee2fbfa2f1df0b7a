"""The judge's scoring call, written once for both judge deployments: the run's `Judge` (a Serve handle the
stages call) and the served `JudgeHttp` (`alma judge serve`). Plain Python around one engine, so it runs
the same inside a replica and in a test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alma.core.engine_api import ConcurrentEngine
from alma.core.judge_modes import batch_seed, check_mode, judge
from alma.core.judge_prompt import judge_messages
from alma.engines.factory import EngineSettings, load_engine

if TYPE_CHECKING:
    from alma.config import JudgeConfig

Pair = dict[str, str]


@dataclass(frozen=True)
class Scoring:
    """How a judgment is read (judge.scoring, judge.samples, judge.sample_temperature)."""

    mode: str = "expected"
    samples: int = 5
    temperature: float = 1.0

    @classmethod
    def of(cls, judge_cfg: JudgeConfig) -> Scoring:
        return cls(judge_cfg.scoring, judge_cfg.samples, judge_cfg.sample_temperature)


class PairScorer:
    """One judge checkpoint scoring {prompt, response} pairs against a rubric."""

    def __init__(self, checkpoint: str, rubric: str, answer_prefix: str, scoring: Scoring,
                 settings: EngineSettings) -> None:
        self.checkpoint = checkpoint
        self.scoring = Scoring(check_mode(scoring.mode), scoring.samples, scoring.temperature)
        self._rubric, self._prefix = rubric, answer_prefix
        self._engine = load_engine(checkpoint, settings)

    @property
    def concurrent(self) -> bool:
        """Whether calls may overlap (vLLM batches them itself); a transformers engine takes one at a time."""
        return isinstance(self._engine, ConcurrentEngine)

    def score(self, pairs: list[Pair], mode: str | None = None) -> list[dict[str, Any]]:
        """One {score, distribution, mode, missing} per pair, in order; `mode` overrides the configured one."""
        mode = check_mode(mode) if mode is not None else self.scoring.mode
        conversations = [judge_messages(p["prompt"], p["response"], self._rubric) for p in pairs]
        # Seeded by the pairs themselves, so that rescoring a batch (a retried stage) samples the same.
        seed = batch_seed(text for p in pairs for text in (p["prompt"], p["response"]))
        judgments = judge(self._engine, conversations, self._prefix, mode, self.scoring.samples,
                          self.scoring.temperature, seed)
        return [j.as_dict() for j in judgments]
