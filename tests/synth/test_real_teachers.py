"""Generation through real models: the packaged SmolLM2 in-process, and behind llama-cpp-python's
OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import pytest

from seedloop.core.tables import read_table
from synth.seeds import load_seeds
from tests.conftest import EXAMPLE_SEEDS, run_cli


@pytest.mark.slow
def test_openai_path_against_llama_cpp_server(llama_server, tmp_path):
    out = tmp_path / "out.jsonl"
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", 3, "--out", out, "--teacher", "openai:smollm2",
                  "--base-url", llama_server, "--concurrency", 2, "--cache", tmp_path / "c.sqlite",
                  env={"OPENAI_API_KEY": ""})
    assert res.returncode == 0, res.stderr
    df = read_table(out)
    assert len(df) == 3 and set(df["teacher"]) == {"openai:smollm2"}
    assert all(o.strip() for o in df["output"])
    ledger = run_cli("ledger", "--cache", tmp_path / "c.sqlite")
    assert "openai:smollm2" in ledger.stdout


@pytest.mark.slow
@pytest.mark.parametrize("method,n", [("self-instruct", 5), ("evol-instruct", 2)])
def test_embedded_local_teacher(tmp_path, method, n):
    out = tmp_path / "out.parquet"
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", n, "--out", out, "--method", method,
                  "--cache", tmp_path / "c.sqlite")
    assert res.returncode == 0, res.stderr
    df = read_table(out)
    seed_ids = set(load_seeds(EXAMPLE_SEEDS)["id"])
    assert len(df) == n and set(df["teacher"]) == {"local:smollm2-135m-instruct"}
    assert all(set(p) & seed_ids for p in df["parents"].to_list()) or method == "evol-instruct"
    assert all(r.strip() for r in df["instruction"]) and all(o.strip() for o in df["output"])
