"""Finding Label Studio, connection settings and errors that need no running server."""

from __future__ import annotations

import json
import stat

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError

from curate.review.connection import LabelStudioConnection, connect, is_transient
from curate.review.errors import Unreachable
from curate.review.server import find_label_studio, free_port
from seedloop.core.errors import ConfigError
from tests.conftest import run_cli

TOKEN = "fake-secret-token-do-not-print-1234567890"


def _exe(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_executable_order_option_env_path_then_local_venv(tmp_path, monkeypatch):
    option, env, on_path = _exe(tmp_path / "opt" / "ls"), _exe(tmp_path / "env" / "ls"), \
        _exe(tmp_path / "bin" / "label-studio")
    local = _exe(tmp_path / "work" / ".venv-labelstudio" / "bin" / "label-studio")
    monkeypatch.setenv("SEEDLOOP_LABEL_STUDIO", str(env))
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_label_studio(option, cwd=tmp_path / "work") == option
    assert find_label_studio(cwd=tmp_path / "work") == env
    monkeypatch.delenv("SEEDLOOP_LABEL_STUDIO")
    assert find_label_studio(cwd=tmp_path / "work") == on_path
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert find_label_studio(cwd=tmp_path / "work") == local


def test_missing_executable_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEDLOOP_LABEL_STUDIO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"pip install label-studio==1\.23\.2"):
        find_label_studio(cwd=tmp_path)
    with pytest.raises(ConfigError, match="not an executable"):
        find_label_studio(tmp_path / "missing")


def test_connection_settings_are_checked(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="LABEL_STUDIO_URL"):
        connect()
    with pytest.raises(ConfigError, match="http://"):
        connect("localhost:8080", TOKEN)
    with pytest.raises(ConfigError, match="Personal Access Token"):
        connect("http://127.0.0.1:1")


def test_nobody_listening_is_one_clear_error_after_retries():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as err:
        connect(url, TOKEN, retries=2, backoff=0.01)
    message = str(err.value)
    assert url in message and "after 3 attempts" in message and "seedloop review serve" in message
    assert TOKEN not in message and TOKEN not in repr(LabelStudioConnection(url, TOKEN))


def test_what_is_retried():
    request = httpx.Request("GET", "http://x")
    assert is_transient(httpx.ConnectError("refused", request=request))
    assert is_transient(httpx.ReadTimeout("slow", request=request))
    assert is_transient(ApiError(status_code=503, body="busy"))
    assert is_transient(ApiError(status_code=429, body="later"))
    assert not is_transient(ApiError(status_code=401, body="no"))
    assert not is_transient(ApiError(status_code=400, body="bad"))
    assert not is_transient(ValueError("not json"))


def test_table_without_instruction_is_refused_before_connecting(tmp_path):
    table = tmp_path / "no_instruction.jsonl"
    table.write_text(json.dumps({"output": "an answer"}) + "\n")
    result = run_cli("review", "push", table, "--project", "p", env={"LABEL_STUDIO_URL": "http://127.0.0.1:1",
                                                                      "LABEL_STUDIO_API_KEY": TOKEN})
    assert result.returncode == 2
    assert str(table) in result.stderr and "'instruction'" in result.stderr


def test_table_without_outputs_is_refused(tmp_path):
    table = tmp_path / "no_output.jsonl"
    table.write_text("\n".join(json.dumps({"instruction": f"Say hello number {i}."}) for i in range(3)) + "\n")
    result = run_cli("review", "push", table, "--project", "p", env={"LABEL_STUDIO_URL": "http://127.0.0.1:1",
                                                                      "LABEL_STUDIO_API_KEY": TOKEN})
    assert result.returncode == 2
    assert str(table) in result.stderr and "'output'" in result.stderr


def test_blank_instruction_is_named_by_row(tmp_path):
    table = tmp_path / "blank.jsonl"
    rows = [{"instruction": "Say hi.", "output": "hi"}, {"instruction": "  ", "output": "x"}]
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run_cli("review", "push", table, "--project", "p", env={"LABEL_STUDIO_URL": "http://127.0.0.1:1",
                                                                      "LABEL_STUDIO_API_KEY": TOKEN})
    assert result.returncode == 2 and "row 2" in result.stderr


def test_serve_needs_a_password_for_a_new_server(tmp_path):
    exe = _exe(tmp_path / "bin" / "label-studio")
    result = run_cli("review", "serve", "--data-dir", tmp_path / "ls", "--port", free_port(),
                     "--label-studio", exe, env={"LABEL_STUDIO_PASSWORD": ""})
    assert result.returncode == 2 and "LABEL_STUDIO_PASSWORD" in result.stderr
    assert not (tmp_path / "ls").exists()


def test_unreachable_server_exits_non_zero_without_the_token(tmp_path):
    table = tmp_path / "ok.jsonl"
    table.write_text(json.dumps({"instruction": "Say hi.", "output": "hi"}) + "\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("review", "push", table, "--project", "p", "--retries", "1",
                     env={"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": TOKEN})
    assert result.returncode == 1
    assert "cannot reach Label Studio" in result.stderr and url in result.stderr
    assert TOKEN not in result.stdout + result.stderr
