"""The retraining deployment really runs: a Prefect server and a process worker on loopback,
the deployment triggered through the API, and a new router version in the MLflow registry.

Everything runs in subprocesses with their own PREFECT_HOME, so this test shares no Prefect
state with other tests or with a developer's server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEADLINE_S = 170


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_memory(folder: Path, n: int = 200, dim: int = 16) -> None:
    from rar_tasks.memory import LanceMemory, MemoryRecord

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    good = vectors[:, 0] + 0.3 * rng.normal(size=n) > -0.2
    start = datetime(2026, 1, 1, tzinfo=UTC)
    memory = LanceMemory(folder / "memory.lance", dim)
    memory.upsert([
        MemoryRecord(f"r{i}", "default", f"request {i}", vectors[i].tolist(),
                     "weak_ok" if good[i] else "strong_needed",
                     created_at=start + timedelta(minutes=i))
        for i in range(n)
    ])


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise AssertionError(f"prefect server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"prefect server at {url} not healthy after {timeout:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_retrain_deployment_runs_on_a_real_server_and_registers_a_champion(tmp_path):
    started = time.monotonic()
    data = tmp_path / "data"
    _write_memory(data)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    registry_uri = f"sqlite:///{data / 'mlflow.db'}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "RAR_DATA_DIR": str(data),
        "RAR_REGISTRY_URI": registry_uri,
        "PYTHONPATH": str(REPO),
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def spawn(name: str, *args: str) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(proc)
        return proc

    try:
        server = spawn("server", str(BIN / "prefect"), "server", "start", "--host",
                       "127.0.0.1", "--port", str(port))
        _wait_healthy(api, server, timeout=60)

        subprocess.run(
            [sys.executable, "-m", "deployments.deploy", "--pool", "rar-test",
             "--retrain-params", json.dumps({"min_holdout": 5, "tag_snapshot": True})],
            cwd=REPO, env=env, check=True, timeout=60, capture_output=True,
        )
        spawn("worker", str(BIN / "prefect"), "worker", "start", "--pool", "rar-test",
              "--type", "process")
        remaining = DEADLINE_S - (time.monotonic() - started) - 10
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "rar-retrain-router/nightly-retrain",
             "--watch", "--watch-timeout", str(int(remaining))],
            cwd=REPO, env=env, timeout=remaining + 5, capture_output=True, text=True,
        )
        assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:],
                                     (logs / "worker.log").read_text()[-3000:])
        assert "Completed" in run.stdout + run.stderr

        from registry.store import RegistryConfig, RouterRegistry

        registry = RouterRegistry(RegistryConfig(registry_uri))
        versions = registry.versions()
        assert [v.version for v in versions] == ["1"]
        assert set(versions[0].aliases) == {"champion", "challenger"}
        assert versions[0].tags["memory_version"] == "2"
        assert versions[0].tags["gate_reason"] == "no_champion"
        assert registry.load("champion").config.dim == 16
    finally:
        for proc in reversed(procs):
            _stop(proc)
    assert time.monotonic() - started < DEADLINE_S
