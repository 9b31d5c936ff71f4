"""Fixtures shared by every test area: the fake LLM server, the real llama.cpp server, the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from seedloop.core.data import BANKING77  # noqa: F401  (tests import it from here)
from tests.fakes import FakeLLMServer

pytest_plugins = ["tests.label_studio"]   # the session Label Studio server (review, active learning, loop)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SEEDS = ROOT / "examples" / "banking_seeds.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None):
    """`seedloop ARGS` in a fresh process, as a user runs it; returns the CompletedProcess."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "seedloop", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


@pytest.fixture
def fake_llm():
    server = FakeLLMServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """The real OpenAI-compatible server of llama-cpp-python, serving the packaged SmolLM2 GGUF."""
    from seedloop.core.models import packaged_gguf

    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    # OMP_NUM_THREADS=1 asks the suite to share the CPU: llama.cpp's threads wait on each other at every
    # step, so two of them on a busy 2-core machine run several times slower than one
    threads = os.environ.get("OMP_NUM_THREADS") or "2"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_gguf()), "--host", "127.0.0.1",
             "--port", str(port), "--model_alias", "smollm2", "--n_ctx", "4096", "--n_threads", threads],
            stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("llama_cpp.server did not start in 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
