"""Drawing each round's prompts from the pool without ever reusing one across rounds.

Two methods (round.draw): `random`, uniform over the unused prompts, and `clustered` (the paper's
diversified selection), one prompt from each of K distinct k-means clusters. `used` is every prompt an
earlier round drew (read back from the committed draw files), so a resumed run continues the same pool.
Both draws are reproducible for a given seed and independent of the pool's row order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from alma.core.errors import RunStateError


def _check_enough(unused: int, k: int) -> None:
    if unused < k:
        raise RunStateError(
            f"the prompt pool has {unused} unused prompts but a round needs {k}; "
            "raise pool.attempts or lower round.prompts_per_round"
        )


def draw_random(pool_ids: Sequence[str], used: set[str], k: int, seed: int) -> list[str]:
    """K pool prompt ids not in `used`, chosen uniformly at random; reproducible for a given seed.

    Sorting the candidates first makes the draw independent of the pool's row order, so a resumed run
    draws exactly what the interrupted one would have.
    """
    candidates = sorted(set(pool_ids) - used)
    _check_enough(len(candidates), k)
    return random.Random(seed).sample(candidates, k)


def draw_clustered(pool_ids: Sequence[str], clusters: Sequence[int], used: set[str], k: int,
                   seed: int) -> list[str]:
    """K unused prompt ids from K distinct clusters: clusters chosen uniformly among those that still
    hold unused prompts, then one unused prompt chosen uniformly inside each.

    When fewer than K clusters hold unused prompts, every such cluster gives one prompt and the rest
    is filled one prompt at a time from the cluster with the most unused prompts left (ties: lowest
    cluster id), so the shortfall is spread over the largest clusters rather than piled on one.
    """
    if len(pool_ids) != len(clusters):
        raise ValueError(f"{len(pool_ids)} pool ids but {len(clusters)} cluster ids")
    members: dict[int, list[str]] = {}
    for pid, cluster in sorted(zip(pool_ids, clusters)):
        if pid not in used:
            members.setdefault(int(cluster), []).append(pid)
    _check_enough(sum(len(m) for m in members.values()), k)
    rng = random.Random(seed)
    chosen = rng.sample(sorted(members), min(k, len(members)))
    drawn = []
    for cluster in chosen:
        drawn.append(members[cluster].pop(rng.randrange(len(members[cluster]))))
    while len(drawn) < k:
        cluster = min((c for c in members if members[c]), key=lambda c: (-len(members[c]), c))
        drawn.append(members[cluster].pop(rng.randrange(len(members[cluster]))))
    return drawn
