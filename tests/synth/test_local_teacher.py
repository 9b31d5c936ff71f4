"""The embedded llama.cpp teacher runs in a worker process: it answers like before, this process
never loads llama.cpp, and a worker that dies (a native fault) stops the run with its signal and a
pointer to `seedloop doctor`, while the answers completed before it stay cached."""

from __future__ import annotations

import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seedloop.core.errors import TeacherError
from synth.teachers.local import LlamaCppTeacher
from tests.conftest import EXAMPLE_SEEDS, ROOT, run_cli

CHILD = """
import asyncio, sys
from synth.teachers import ChatRequest
from synth.teachers.local import LlamaCppTeacher

teacher = LlamaCppTeacher()
plain = ChatRequest.of([{"role": "user", "content": "Name a color."}], max_tokens=8, temperature=0.0)
prefill = ChatRequest.of([{"role": "user", "content": "Count to five."},
                          {"role": "assistant", "content": "1, 2,"}], max_tokens=8, temperature=0.0)
a = teacher.complete_sync(plain)
b = asyncio.run(teacher.complete(prefill))
print("loaded in parent:", "llama_cpp" in sys.modules)
print("tokens:", a.output_tokens, b.output_tokens)
print("texts:", repr(a.text), repr(b.text))
teacher.close()
print("worker exit:", teacher._worker.proc.returncode)
"""


def test_answers_sync_and_async_and_the_parent_never_loads_llama_cpp():
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "loaded in parent: False" in res.stdout
    tokens = re.search(r"tokens: (\d+) (\d+)", res.stdout)
    assert tokens and int(tokens[1]) > 0 and int(tokens[2]) > 0
    assert re.search(r"worker exit: -?\d+", res.stdout)   # closed: the worker has exited


@pytest.fixture
def no_core_files():
    """A worker killed by SIGILL would dump core where cores are on; nothing to see in one here."""
    before = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, before[1]))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, before)


def test_a_dead_worker_is_a_teacher_error_naming_its_signal(no_core_files):
    from synth.teachers import ChatRequest

    teacher = LlamaCppTeacher()
    try:
        os.kill(teacher.pid, signal.SIGILL)
        request = ChatRequest.of([{"role": "user", "content": "Say hi."}], max_tokens=4)
        with pytest.raises(TeacherError, match=r"local:smollm2-135m-instruct: .*died with SIGILL.*seedloop doctor"):
            teacher.complete_sync(request)
        with pytest.raises(TeacherError, match="SIGILL"):   # not restarted: the same answer at once
            teacher.complete_sync(request)
    finally:
        teacher.close()


def worker_of(pid: int) -> int | None:
    """The llama.cpp worker process started by process `pid`, if there is one yet."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:   # ended meanwhile
            continue
        if int(fields[1]) == pid and b"synth.teachers.llama_worker" in cmdline:
            return int(stat.parent.name)
    return None


def cached_rows(cache: Path) -> list[tuple]:
    if not cache.exists():
        return []
    try:
        with sqlite3.connect(cache, timeout=10) as db:
            return db.execute("SELECT key, text, created_at FROM requests ORDER BY key").fetchall()
    except sqlite3.OperationalError:   # the table is not created yet
        return []


@pytest.mark.slow
def test_generate_stops_when_the_worker_dies_and_keeps_its_answers(tmp_path):
    cache = tmp_path / "c.sqlite"
    # two evolutions: two rewrites, then two answers (about 4 requests), two slots in flight
    args = ["generate", "--seeds", EXAMPLE_SEEDS, "--n", 2, "--method", "evol-instruct", "--concurrency", 2,
            "--out", tmp_path / "out.parquet", "--cache", cache]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "seedloop", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 300
        while len(cached_rows(cache)) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        worker = worker_of(proc.pid)
        assert worker is not None and proc.poll() is None, "the run ended before the worker could be killed"
        os.kill(worker, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    message = " ".join(stderr.split())
    assert "died with SIGKILL" in message and "seedloop doctor" in message and "local:smollm2" in message
    assert "Traceback" not in stderr
    before = cached_rows(cache)
    assert len(before) >= 2

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    after = {key: rest for key, *rest in cached_rows(cache)}
    assert all(after[key] == rest for key, *rest in before)   # kept as they were, not recomputed
    sent, cached = map(int, re.search(r"requests sent / cached / retried\D+(\d+) / (\d+)", again.stderr).groups())
    assert cached >= len(before) and len(after) == len(before) + sent
