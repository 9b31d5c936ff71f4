"""A real local Ray cluster for the session: `ray start --head` on 127.0.0.1 with 2 CPUs, this test
process connected as its driver, and `ray stop` at the end (even when a test or the start failed).

The cluster is started without the teachers' API keys in its environment, so a worker can only
know a key that seedloop handed it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")


@dataclass
class Cluster:
    address: str
    temp_dir: Path

    def log_text(self) -> str:
        """Every log file the cluster wrote so far, as one string (to look for leaked secrets)."""
        parts = []
        for f in self.temp_dir.rglob("*"):
            if f.is_file() and "logs" in f.parts:
                parts.append(f.read_text(errors="replace"))
        return "\n".join(parts)


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    ray_bin = str(Path(sys.executable).parent / "ray")
    # Ray puts Unix sockets under --temp-dir, and a socket path must stay under 108 bytes
    temp = Path(tempfile.mkdtemp(prefix="sr", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # Ray 2.60 turns token auth on for `ray start` when ~/.ray/auth_token exists (a plain `ray.init()`
    # writes one), yet never for a driver given an explicit address: off for this 127.0.0.1 cluster
    env["RAY_AUTH_MODE"] = "disabled"
    port = free_port()
    try:
        started = subprocess.run(
            [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--port", str(port),
             "--include-dashboard", "false", "--temp-dir", str(temp), "--disable-usage-stats"],
            capture_output=True, text=True, env=env, timeout=300)
        if started.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}")
        address = f"127.0.0.1:{port}"
        ray.init(address=address, logging_level=logging.WARNING)
        yield Cluster(address, temp)
    finally:
        ray.shutdown()
        subprocess.run([ray_bin, "stop"], capture_output=True, env=env, timeout=300)
        shutil.rmtree(temp, ignore_errors=True)
