"""`ray job submit -- alma run` against a Ray head on loopback: the driver joins the cluster it is given.

The head runs in a private PID namespace (unshare) when available, so ending that one process ends every
Ray process the test started, and nothing else on the machine is touched.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from e2e_run import K, copy_before_round

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    # Outside Ray's worker port range (10002-19999) and away from the 8000/8265 defaults.
    while True:
        port = random.randint(21000, 29000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def _wait_http(port: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def head(tmp_path, alma_cache):
    token = tmp_path / "auth_token"
    token.write_text("0" * 32 + "feedface" * 4)
    token.chmod(0o600)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "ALMA_CACHE": str(alma_cache), "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    gcs, dash = _free_port(), _free_port()
    temp = Path(f"/tmp/alma-job-{os.getpid()}-{gcs}")
    cmd = [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--num-cpus", "4",
           "--temp-dir", str(temp), "--disable-usage-stats"]
    if shutil.which("unshare") and subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"]).returncode == 0:
        cmd = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *cmd]
    proc = subprocess.Popen(cmd, env=env, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        _wait_http(dash)
        yield {"env": env, "dashboard": f"http://127.0.0.1:{dash}", "proc": proc}
    finally:
        # Only the process group this test started: the head and (in its namespace) every Ray process.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)  # a graceful `ray stop` of the whole head takes ~35 s; SIGKILL after 15
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_alma_run_as_a_ray_job(head, tmp_path, tiny_run):
    """`ray job submit` of `alma run --resume` on a copy of the shared tiny run taken back to just before
    round 2: the job's driver joins the cluster and does round 2's real work (sampling over three
    checkpoints, judging, best-of-N, a Ray Train training) on the cluster's workers."""
    out = copy_before_round(tiny_run[0], tmp_path / "run", 2)
    entry = f"{sys.executable} -m alma.cli run --resume {out}"
    res = subprocess.run([RAY, "job", "submit", "--address", head["dashboard"], "--", *entry.split()],
                         env=head["env"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "succeeded" in (res.stdout + res.stderr).lower()
    assert "joined Ray cluster" in (out / "logs" / "driver.log").read_text()
    assert "round 2 responses: committed" in res.stdout + res.stderr
    scores = pq.read_table(out / "rounds" / "02" / "best" / "best.parquet")
    assert scores.num_rows == K
    assert (out / "checkpoints" / "round-2" / "model.safetensors").exists()
