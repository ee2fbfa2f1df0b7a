"""Shared fixtures: a tiny real model built once per test session, never fetched from a hub."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests must never reach for the Hugging Face hub; set before any test imports transformers.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def alma_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's alma cache, and $ALMA_CACHE for every test: what a test builds (a converted model, a
    built seed set) never lands in the user's ~/.cache/alma, and no test passes because an earlier session
    left something there."""
    cache = tmp_path_factory.mktemp("alma-cache")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALMA_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def tiny_model(alma_cache: Path) -> Path:
    from alma.checkpoints import resolve_model

    return resolve_model("builtin:tiny", alma_cache)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, alma_cache: Path, tiny_model: Path):
    """`alma run --preset tiny` (R=2, K=4, N=6, M=10) through the real CLI, once per session: test_e2e checks
    it; the fault, Ray-job and URI tests resume copies of it rewound to round 2 (tests/e2e_run.py)."""
    from e2e_run import alma, run_args

    root = tmp_path_factory.mktemp("e2e")
    out = root / "run"
    args = run_args(str(out))
    first = alma(args, alma_cache, root)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return out, args, first, root

