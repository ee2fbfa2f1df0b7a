"""How generation requests are grouped into deployment calls.

A round asks each prompt for N samples spread over several checkpoints, one input row per (prompt,
checkpoint) carrying that checkpoint's share n. If calls were sized in rows, a split round would send calls
a third as large as an unsplit one (8 rows of n=2 instead of 8 rows of n=6), and, rows being laid out
prompt by prompt, every call would also be cut in three per-checkpoint requests: a replica batching on a
CPU or GPU then runs three times as many, three times smaller engine batches. So `serve.request_batch`
counts prompts, and a call carries that many prompts' worth of samples whatever the split: rows are
ordered checkpoint by checkpoint and a call holds `request_batch` x (rows per prompt) rows.
"""

from __future__ import annotations

from typing import Any, Sequence


def order_requests(rows: Sequence[dict[str, Any]], group: str, unit: str,
                   request_batch: int) -> tuple[list[dict[str, Any]], int]:
    """`rows` ordered by their `group` column (first-seen order of groups, rows in input order within
    one) and the rows per call that make each call carry `request_batch` distinct `unit`s' worth of rows.

    >>> rows = [{"p": i, "c": c} for i in range(4) for c in "abc"]
    >>> ordered, size = order_requests(rows, "c", "p", 2)
    >>> [r["c"] for r in ordered[:5]], size
    (['a', 'a', 'a', 'a', 'b'], 6)
    """
    if request_batch < 1:
        raise ValueError(f"request_batch must be at least 1, not {request_batch}")
    if not rows:
        return [], request_batch
    order: dict[Any, int] = {}
    for row in rows:
        order.setdefault(row[group], len(order))
    ordered = sorted(rows, key=lambda row: order[row[group]])  # stable: input order within a group
    units = len({row[unit] for row in rows})
    per_unit = len(rows) / units
    return ordered, max(1, round(request_batch * per_unit))
