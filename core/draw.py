"""Drawing each round's prompts from the pool without ever reusing one across rounds."""

from __future__ import annotations

import random
from typing import Sequence

from alma.core.errors import RunStateError


def draw_random(pool_ids: Sequence[str], used: set[str], k: int, seed: int) -> list[str]:
    """K pool prompt ids not in `used`, chosen uniformly at random; reproducible for a given seed.

    Sorting the candidates first makes the draw independent of the pool's row order, so a resumed run
    draws exactly what the interrupted one would have.
    """
    candidates = sorted(set(pool_ids) - used)
    if len(candidates) < k:
        raise RunStateError(
            f"the prompt pool has {len(candidates)} unused prompts but a round needs {k}; "
            "raise pool.attempts or lower round.prompts_per_round"
        )
    return random.Random(seed).sample(candidates, k)
