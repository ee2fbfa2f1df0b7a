"""train.seed_rows: a fixed, seeded slice of a large seed that every policy training shares."""

from __future__ import annotations

from alma.config import load_config
from alma.core.seeds import SftExample
from alma.jobs.initial_models import seed_sample, sft_rows


def examples(n: int) -> list[SftExample]:
    return [SftExample([{"role": "user", "content": f"question {i}"}], f"answer {i}") for i in range(n)]


def test_seed_sample_is_seeded_ordered_and_whole_when_unset():
    rows = examples(50)
    picked = seed_sample(rows, 10, seed=0)
    assert len(picked) == 10 and len(set(map(id, picked))) == 10
    assert picked == sorted(picked, key=rows.index), "file order is kept"
    assert picked == seed_sample(rows, 10, seed=0) and picked != seed_sample(rows, 10, seed=1)
    assert seed_sample(rows, None, 0) == rows and seed_sample(rows, 80, 0) == rows


def test_sft_rows_use_the_same_slice_for_every_policy():
    rows = examples(30)
    a, b = sft_rows(rows, 8, seed=3), sft_rows(rows, 8, seed=3)
    assert a == b and len(a) == 8 and all(r["source"] == "seed" for r in a)
    assert len(sft_rows(rows)) == 30


def test_cpu_align_preset_builds_its_seeds_and_slices_them():
    cfg = load_config("cpu-align")
    assert cfg.seed_sft == cfg.seed_judge == "builtin:sharegpt"
    assert cfg.train.seed_rows and cfg.rounds >= 3
    assert cfg.rounds * cfg.round.prompts_per_round <= cfg.pool.attempts
