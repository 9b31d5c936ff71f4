"""The server goes away in the middle of a push; `seedloop review serve` starts and stops for real.

These tests stop and restart the session's server (same data folder and port, so its token stays
valid); each leaves it running.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from curate.review import Unreachable, push_records
from curate.review.server import port_in_use
from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import write_table
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def big_table(n: int, tag: str):
    return to_frame([new_record(f"Question {tag} number {i}: what is {i} plus {i}?", "", str(2 * i),
                                teacher="local") for i in range(n)])


def task_count(conn, project_id: int) -> int:
    return conn.sdk.projects.get(project_id).task_number


def test_server_down_mid_import_then_rerun_finishes_without_duplicates(label_studio, project_name, tmp_path):
    df = big_table(250, "down")
    conn = label_studio.connect(retries=1, backoff=0.05)

    def stop_after_first_batch(done: int, total: int) -> None:
        if done >= 100 and label_studio.server.proc is not None:
            label_studio.stop()

    try:
        with pytest.raises(Unreachable) as err:
            push_records(conn, df, project_name, batch_size=100, progress=stop_after_first_batch)
    finally:
        label_studio.start()
    assert "run the same command again" in str(err.value)
    assert label_studio.token not in str(err.value)

    table = write_table(df, tmp_path / "big.parquet")
    rerun = run_cli("review", "push", table, "--project", project_name, env=label_studio.env())
    assert rerun.returncode == 0, rerun.stderr
    conn = label_studio.connect()
    project_id = push_records(conn, df, project_name).project.id
    assert task_count(conn, project_id) == 250


def test_push_rides_out_a_restart_in_the_middle_of_a_batch(label_studio, project_name):
    df = big_table(300, "bounce")
    conn = label_studio.connect(retries=12, backoff=0.5, max_backoff=4)
    bounced = threading.Event()

    def bounce() -> None:
        time.sleep(0.2)           # the next batch is on its way: stop the server under it
        label_studio.stop()
        label_studio.start()

    def start_bounce(done: int, total: int) -> None:
        if done >= 100 and not bounced.is_set():
            bounced.set()
            threading.Thread(target=bounce, daemon=True).start()

    result = push_records(conn, df, project_name, batch_size=100, progress=start_bounce)
    assert bounced.is_set()
    assert result.imported + result.skipped["landed_before_retry"] == 300
    assert task_count(conn, result.project.id) == 300


def test_serve_runs_a_server_users_push_to_and_stops_it(label_studio, project_name, tmp_path):
    server = label_studio.server
    label_studio.stop()
    env = {**os.environ, "COLUMNS": "200", "LABEL_STUDIO_PASSWORD": ""}
    serve = subprocess.Popen([sys.executable, "-m", "seedloop", "review", "serve", "--port", str(server.port),
                              "--data-dir", str(server.data_dir), "--label-studio", str(server.executable)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in serve.stderr], daemon=True).start()
    try:
        seen = _wait_for(lines, "Label Studio is up", timeout=180)
        assert "log in as admin@localhost" in seen and "LABEL_STUDIO_API_KEY=<the token>" in seen
        table = write_table(big_table(5, "serve"), tmp_path / "t.jsonl")
        pushed = run_cli("review", "push", table, "--project", project_name, env=label_studio.env())
        assert pushed.returncode == 0, pushed.stderr
        pulled = run_cli("review", "pull", "--project", project_name, "--out", tmp_path / "o.jsonl",
                         env=label_studio.env())
        assert pulled.returncode == 0 and len((tmp_path / "o.jsonl").read_text().splitlines()) == 5
        serve.send_signal(signal.SIGINT)
        assert serve.wait(60) == 0
        assert not port_in_use(server.host, server.port)     # Label Studio went down with it
    finally:
        if serve.poll() is None:
            serve.terminate()    # serve turns SIGTERM into a clean stop of its server as well
            serve.wait(60)
        label_studio.start()


def _wait_for(lines: queue.Queue, text: str, timeout: float) -> str:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            continue
        if text in seen[-1]:
            # the steps follow the banner in the same print; give them a moment to arrive
            time.sleep(0.5)
            while not lines.empty():
                seen.append(lines.get())
            return "".join(seen)
    raise AssertionError(f"no '{text}' from serve within {timeout} s:\n{''.join(seen)[-3000:]}")
