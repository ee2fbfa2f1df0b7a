"""A Ray cluster of one head and worker nodes on this machine, each node with a disk of its own.

The whole cluster lives in a network namespace the test makes (`unshare --net`), holding only a loopback
interface: a multi-node Ray binds some of its listeners to every interface (only a single-node Ray can be
held to 127.0.0.1), and inside that namespace "every interface" is the test's own loopback. Clients (the
test's `ray job submit`, an object store server) enter the same namespace with `nsenter`.

Every node is its own `ray start --block`, in its own PID and mount namespace: ending that one process
ends every Ray process of the node, and nothing else on the machine is touched. Inside its mount
namespace each node mounts a private tmpfs at the same path, PRIVATE, and keeps there its alma cache
(ALMA_CACHE), its working copies (ALMA_SCRATCH), its temp files (TMPDIR) and Ray's session folder. A path
under PRIVATE that one node hands another therefore names nothing there: a hidden assumption of one
shared disk fails instead of passing by accident. What the nodes share is only what a test gives them
on purpose (a folder standing in for an NFS volume, or an object store on loopback).

Worker nodes offer the custom resource WORKER, so that a run can pin its Serve replicas and Ray Train
workers to them (serve.resources, train.resources) and the test can assert where the work went.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
WORKER = "alma_worker"
NODE_PREFIX = "alma_node_"


def free_port() -> int:
    """A free loopback port outside Ray's worker port range (10002-19999) and the 8000/8265 defaults."""
    while True:
        port = random.randint(21000, 29000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def namespaces_available() -> bool:
    """Whether this process may make PID and mount namespaces and mount a tmpfs in one (root, or a
    container that allows it)."""
    if not all(shutil.which(tool) for tool in ("unshare", "nsenter", "ip", "setpriv")):
        return False
    probe = Path(f"/tmp/alma-ns-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        return subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c",
                               f"ip link set lo up && mount -t tmpfs tmpfs {probe}"],
                              capture_output=True).returncode == 0
    finally:
        probe.rmdir()


@dataclass
class Node:
    name: str
    proc: subprocess.Popen
    log: Path
    cpus: int
    worker: bool


@dataclass
class Cluster:
    """The running cluster: its nodes, where to reach it, and the environment a client needs."""

    private: Path  # the path every node mounts its own tmpfs at
    gcs_port: int
    dashboard: str
    env: dict[str, str]
    logs: Path
    nodes: list[Node] = field(default_factory=list)

    def netns(self) -> list[str]:
        """The command prefix that runs a program in the cluster's network namespace (the head's)."""
        return ["nsenter", f"--net=/proc/{self.nodes[0].proc.pid}/ns/net"]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def start_node(self, name: str, cpus: int, worker: bool = True, head: bool = False) -> Node:
        """`ray start` one node in namespaces of its own, with its private folders; returns once it runs."""
        p = self.private
        env = {**self.env, "ALMA_CACHE": f"{p}/cache", "ALMA_SCRATCH": f"{p}/scratch", "TMPDIR": f"{p}/tmp"}
        cmd = [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
               "--temp-dir", f"{p}/ray", "--object-store-memory", str(150 * 2**20), "--disable-usage-stats"]
        if head:
            dash = int(self.dashboard.rsplit(":", 1)[1])
            cmd += ["--head", "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.1",
                    "--dashboard-port", str(dash)]
        else:
            cmd += ["--address", self.address]
        if worker:  # and a resource of its own, by which Ray's view of the node is matched with this one
            cmd += ["--resources", json.dumps({WORKER: 100, f"{NODE_PREFIX}{name}": 1})]
        script = (f"mount -t tmpfs tmpfs {p} && mkdir -p {p}/cache {p}/scratch {p}/tmp {p}/ray && "
                  + " ".join(f"'{c}'" for c in cmd))
        # The head makes the network namespace (and brings its loopback up); the others join it.
        net = ["unshare", "--net"] if head else [*self.netns(), "unshare"]
        if head:
            script = "ip link set lo up && " + script
        log = self.logs / f"{name}.log"
        # setpriv: the node dies with the test process, even one killed before its fixture could stop it.
        proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", *net, "--pid", "--fork", "--kill-child",
                                 "--mount-proc", "sh", "-c", script],
                                env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        node = Node(name, proc, log, cpus, worker)
        self.nodes.append(node)
        return node

    def kill(self, node: Node) -> None:
        """End one node at once (SIGKILL to its namespace's first process, which takes every process of
        the node with it): a machine lost, not a node drained."""
        node.proc.kill()
        node.proc.wait()

    def stop(self) -> None:
        """End every node: SIGKILL to each `unshare`, whose --kill-child ends its namespace's first process,
        and with it every process of the node (a graceful `ray stop` takes ~35 s and proves nothing here)."""
        for node in reversed(self.nodes):
            if node.proc.poll() is None:
                node.proc.kill()
            node.proc.wait()

    def ray_nodes(self) -> list[dict]:
        """Ray's view of the nodes (`ray list nodes`): id, state, resources."""
        res = subprocess.run([*self.netns(), RAY, "list", "nodes", "--address", self.address, "--format", "json",
                              "--detail", "--limit", "100"], env=self.env, capture_output=True, text=True,
                             timeout=60)
        if res.returncode != 0:
            raise RuntimeError(res.stdout[-2000:] + res.stderr[-2000:])
        return json.loads(res.stdout)

    def node_named(self, ray_node_id: str) -> Node:
        """The worker node that Ray knows as `ray_node_id`."""
        for n in self.ray_nodes():
            if n["node_id"] == ray_node_id:
                names = [r[len(NODE_PREFIX):] for r in n["resources_total"] if r.startswith(NODE_PREFIX)]
                return next(node for node in self.nodes if node.name in names)
        raise KeyError(ray_node_id)

    def actor_nodes(self, class_name_part: str) -> set[str]:
        """Ray node ids of the live actors whose class name holds `class_name_part` (`ray list actors`)."""
        res = subprocess.run([*self.netns(), RAY, "list", "actors", "--address", self.address, "--format", "json",
                              "--detail", "--limit", "1000", "--filter", "state=ALIVE"], env=self.env,
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(res.stdout[-2000:] + res.stderr[-2000:])
        return {a["node_id"] for a in json.loads(res.stdout) if class_name_part in a["class_name"]}

    def wait_for_nodes(self, count: int, timeout: float = 180) -> list[dict]:
        deadline = time.time() + timeout
        alive: list[dict] = []
        while time.time() < deadline:
            try:
                alive = [n for n in self.ray_nodes() if n["state"] == "ALIVE"]
            except (RuntimeError, ValueError):
                alive = []
            if len(alive) >= count:
                return alive
            time.sleep(2)
        raise TimeoutError(f"{len(alive)} of {count} Ray nodes came up; logs in {self.logs}")

    def submit(self, entrypoint: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
        """`ray job submit` of `entrypoint`, waiting for it to end; its driver runs on the head node."""
        return subprocess.run([*self.netns(), RAY, "job", "submit", "--address", self.dashboard, "--", *entrypoint],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def submit_async(self, entrypoint: list[str], log: Path) -> subprocess.Popen:
        """`ray job submit` of `entrypoint` in the background (its output, the job's log, into `log`)."""
        return subprocess.Popen([*self.netns(), RAY, "job", "submit", "--address", self.dashboard, "--",
                                 *entrypoint], env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def start_cluster(root: Path, workers: int = 2, head_cpus: int = 1, worker_cpus: int = 3) -> Cluster:
    """A head (no WORKER resource) and `workers` worker nodes, token auth on, every listener on loopback."""
    root.mkdir(parents=True, exist_ok=True)
    token = root / "auth_token"
    token.write_text("0" * 32 + "c0ffee00" * 4)
    token.chmod(0o600)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "HF_HUB_OFFLINE": "1",
           # A node whose processes are gone is declared dead after 5 failed health checks a second apart
           # (Ray's default: 3 s apart); each check still waits Ray's default 10 s for a slow answer, so a
           # busy node is not declared dead.
           "RAY_health_check_period_ms": "1000",
           # and Ray Train's controller looks at its workers every 0.5 s (2 s by default), as on a local Ray
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
           # for the object store a test may start on the cluster's loopback (start_object_store)
           "AWS_ACCESS_KEY_ID": "alma-test", "AWS_SECRET_ACCESS_KEY": "alma-test", "AWS_DEFAULT_REGION": "us-east-1"}
    # alma's local Ray sets this to 0, Ray's switch that keeps a node on loopback by refusing other nodes;
    # here nodes must join, and each binds to 127.0.0.1 by --node-ip-address instead.
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    env.pop("RAY_ADDRESS", None)
    gcs = free_port()
    private = Path(f"/tmp/amn-{gcs}")  # short: Ray's socket paths under it must stay below 107 bytes
    private.mkdir()
    cluster = Cluster(private, gcs, f"http://127.0.0.1:{free_port()}", env, root)
    try:
        head = cluster.start_node("head", head_cpus, worker=False, head=True)
        # The workers join once the head's GCS is up (`ray start` says "Ray runtime started"); `ray list nodes`
        # would also wait for its dashboard, 30-40 s later on 2 loaded cores.
        wait_for_text(head.log, "Ray runtime started", head.proc, head.log, timeout=120)
        for i in range(1, workers + 1):
            cluster.start_node(f"worker-{i}", worker_cpus)
        cluster.wait_for_nodes(1 + workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_text(log: Path, text: str, proc: subprocess.Popen, proc_log: Path, after: int = 0,
                  timeout: float = 600) -> float:
    """Wait until `log` holds `text` past its first `after` characters while `proc` (whose output is in
    `proc_log`) runs; the time it was seen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.is_file() and text in log.read_text(errors="replace")[after:]:
            return time.time()
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} ended before {text!r}:\n{proc_log.read_text()[-5000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"no {text!r} in {log} after {timeout} s")


@dataclass
class ObjectStore:
    """An S3-compatible server (moto's) on the cluster's loopback, and the URI of a bucket in it."""

    proc: subprocess.Popen
    bucket: str  # s3://NAME?endpoint_override=...: how pyarrow (and so alma) reaches it

    def uri(self, path: str) -> str:
        base, _, options = self.bucket.partition("?")
        return f"{base}/{path}?{options}"


def start_object_store(cluster: Cluster, log: Path, bucket: str = "alma") -> ObjectStore:
    """moto's S3 server inside the cluster's network namespace, so that only the nodes (and the test, through
    nsenter) reach it, with one empty bucket."""
    port = free_port()
    proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", *cluster.netns(), sys.executable, "-m", "moto.server",
                             "-H", "127.0.0.1", "-p", str(port)], env=cluster.env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    store = ObjectStore(proc, f"s3://{bucket}?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1")
    try:
        store_copy(cluster, "make-bucket", store.uri("x"))
    except BaseException:
        proc.kill()
        raise
    return store


def store_copy(cluster: Cluster, *args: str) -> None:
    """tests/s3_copy.py in the cluster's network namespace: make-bucket URI, put LOCAL URI, get URI LOCAL."""
    res = subprocess.run([*cluster.netns(), sys.executable, str(Path(__file__).with_name("s3_copy.py")), *args],
                         env=cluster.env, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"s3_copy {args[0]}: {res.stdout[-2000:]}{res.stderr[-2000:]}")


def remove(cluster: Cluster) -> None:
    """Stop every node this cluster started and remove its mount point (empty outside the namespaces)."""
    cluster.stop()
    try:
        cluster.private.rmdir()
    except OSError:
        pass
