"""Which Ray node a process runs on, for the run folder's record of which node ran what.

Stream stages count their rows per caller node and per replica node (jobs.streaming), trainings list
their workers' nodes (jobs.training): on a multi-node cluster that record is how a user (and the
multi-node tests) see where the work went.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# Columns a caller adds to every row it returns; jobs.streaming counts them into the stage's manifest and
# drops them before the rows are written.
CALLER_NODE, REPLICA_NODE = "_caller_node", "_replica_node"
NODE_COLUMNS = (CALLER_NODE, REPLICA_NODE)


def current_node() -> str:
    """This process's Ray node id (hex), or "" outside Ray."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:  # a process that is not a Ray worker has no node to report
        return ""


def count_nodes(nodes: Iterable[str | None]) -> dict[str, int]:
    """Rows per node id, most first; rows that never reached a replica (None, "") are not counted."""
    return dict(Counter(n for n in nodes if n).most_common())
