"""Keep Ray Serve's per-replica gRPC listener on loopback when the node itself is on loopback.

Ray 2.60 replicas open an inter-deployment gRPC server on "[::]:0" (every interface) with no setting to
change it. On a single-node cluster whose node address is 127.0.0.1 nothing outside the machine should
reach it, so the bind address is narrowed to 127.0.0.1. On a multi-node cluster (node address not loopback)
nothing is changed: other nodes must reach the replica.
"""

from __future__ import annotations

import functools


def keep_replica_grpc_on_loopback() -> None:
    """Patch the replica's gRPC bind address once per process (idempotent, no-op off loopback)."""
    try:
        import ray
        from ray.serve._private import replica
    except ImportError:
        return
    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "_alma_loopback", False):
        return
    try:
        node_ip = ray.util.get_node_ip_address()
    except Exception:  # not inside a Ray worker: nothing to narrow
        return
    if not node_ip.startswith("127."):
        return

    @functools.wraps(original)
    def bind_loopback(server, address: str):
        if address.startswith("[::]:") or address.startswith("0.0.0.0:"):
            address = f"{node_ip}:{address.rsplit(':', 1)[1]}"
        return original(server, address)

    bind_loopback._alma_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind_loopback
