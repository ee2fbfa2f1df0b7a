"""Which independent trainings may run at once: their workers' resource bundles packed into the free
resources of a cluster's nodes, wave after wave.

Step 0's three trainings (sft-1, sft-2, the judge) depend on nothing but the base model, so on a cluster
with room for three worker groups they should overlap. Starting them all and letting Ray queue the worker
groups that do not fit is not safe: a worker group that waits for its placement past Ray Train's start-up
timeout counts as a failed attempt. So the driver only starts together what fits now, and this module
decides that from numbers alone (no Ray), so the decision is unit-tested.

A training is a list of bundles, one per worker ({"CPU": 2, "GPU": 1, "alma_worker": 1}); each bundle must
fit on one node, as Ray Train's placement group puts each worker on one node. Trainings keep their order:
a wave is the longest run of consecutive trainings whose bundles all fit at once, so with no room to
spare the order is the one-after-another order a run always had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Bundle = Mapping[str, float]


def _fits(bundle: Bundle, node: Mapping[str, float]) -> bool:
    return all(node.get(name, 0.0) + 1e-9 >= amount for name, amount in bundle.items() if amount > 0)


def place(bundles: Sequence[Bundle], nodes: Sequence[Mapping[str, float]]) -> bool:
    """Whether every bundle fits on some node at once (first fit, largest bundles first; a heuristic that
    can say no to a packing that exists, never yes to one that does not)."""
    return reserve(bundles, nodes) is not None


def waves(trainings: Sequence[Sequence[Bundle]], nodes: Sequence[Mapping[str, float]],
          at_most: int) -> list[list[int]]:
    """The trainings (by index) grouped into waves that run one after another; within a wave they run at
    once. At most `at_most` per wave; a training that does not fit even alone gets a wave of its own (Ray
    then waits for the room, as it always did)."""
    if at_most < 1:
        raise ValueError(f"at_most must be at least 1, got {at_most}")
    out: list[list[int]] = []
    current: list[int] = []
    for index in range(len(trainings)):
        joined = [b for i in current + [index] for b in trainings[i]]
        if current and len(current) < at_most and place(joined, nodes):
            current.append(index)
        else:
            if current:
                out.append(current)
            current = [index]
    if current:
        out.append(current)
    return out


def reserve(bundles: Sequence[Bundle], nodes: Sequence[Mapping[str, float]]) -> list[dict[str, float]] | None:
    """The nodes' free resources left once `bundles` are placed (first fit, as `place`), or None when they do
    not fit: what other work (step 0's trainings) can still plan on while those bundles are held."""
    free = [dict(node) for node in nodes]
    for bundle in sorted(bundles, key=lambda b: (-b.get("GPU", 0.0), -b.get("CPU", 0.0), -sum(b.values()))):
        for node in free:
            if _fits(bundle, node):
                for name, amount in bundle.items():
                    node[name] = node.get(name, 0.0) - amount
                break
        else:
            return None
    return free


def waves_beside(trainings: Sequence[Sequence[Bundle]], beside: Sequence[Bundle],
                 nodes: Sequence[Mapping[str, float]], at_most: int) -> list[list[int]] | None:
    """The trainings' waves planned on what is left once `beside` (the bundles of other work, such as the
    prompt pool's replica and actors) is held for the whole time they train, or None if holding it would
    cost anything: `beside` does not fit, a wave would have to wait for its room, or the trainings would need
    more waves than without it. Independent work then overlaps step 0 only where it delays no training."""
    left = reserve(beside, nodes)
    if left is None:
        return None
    planned = waves(trainings, left, at_most)
    if len(planned) != len(waves(trainings, nodes, at_most)):
        return None
    if not all(place([b for i in wave for b in trainings[i]], left) for wave in planned):
        return None
    return planned
