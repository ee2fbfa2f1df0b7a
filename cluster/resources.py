"""What the cluster has free right now, node by node: what decides which trainings start together
(core.packing)."""

from __future__ import annotations


def free_per_node() -> list[dict[str, float]]:
    """Each alive node's available resources (CPU, GPU, memory, custom ones), as Ray's GCS reports them.

    Ray has no public per-node availability call; its state module's is what `ray status` uses. Where
    that is missing (another Ray), the cluster's total availability counts as one node, which can only
    overstate what fits when a worker's bundle would have to span nodes."""
    import ray

    try:
        from ray._private.state import available_resources_per_node

        per_node = available_resources_per_node()
    except (ImportError, AttributeError):
        per_node = {"cluster": ray.available_resources()}
    return [{name: float(amount) for name, amount in resources.items()} for resources in per_node.values()]
