"""`seedloop generate` and `seeds inspect` given bad input: a budget that cannot pay, a cache from another
endpoint, broken side files (prices, cache), folders where files belong, and text that is read but
suspicious. Each ends in one clear line naming the file, and no output is truncated."""

from __future__ import annotations

import json
import sqlite3

import pytest

from synth.cache import MIGRATIONS, RequestCache
from synth.teachers.base import ChatRequest, cache_key
from tests.conftest import EXAMPLE_SEEDS, run_cli
from tests.fakes import FakeLLMServer

KEY = {"OPENAI_API_KEY": "sk-test-secret-0123456789"}


def generate(url, tmp_path, *extra, out="out.jsonl", cache="cache.sqlite", seeds=EXAMPLE_SEEDS, n=4):
    return run_cli("generate", "--seeds", seeds, "--n", n, "--out", tmp_path / out, "--teacher", "openai:fake",
                   "--base-url", url, "--cache", tmp_path / cache, "--concurrency", 2, *extra, env=KEY)


def one_error_line(res) -> str:
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr[-3000:]
    return errors[0]


# -- a budget that wipes data ------------------------------------------------------------------------

@pytest.mark.parametrize("budget", ["0", "0.000001"])
def test_budget_that_cannot_pay_for_one_request_keeps_the_output(fake_llm, tmp_path, budget):
    out = tmp_path / "out.jsonl"
    out.write_text('{"instruction": "from an earlier run"}\n')
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:fake: {input: 2.5, output: 10}\n")
    res = generate(fake_llm.url, tmp_path, "--max-cost", budget, "--prices", prices)
    assert res.returncode == 2
    assert "cannot pay for one request" in one_error_line(res)
    assert out.read_text() == '{"instruction": "from an earlier run"}\n'
    assert fake_llm.seen == []


def test_negative_budget_is_a_usage_error(fake_llm, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:fake: {input: 2.5, output: 10}\n")
    res = generate(fake_llm.url, tmp_path, "--max-cost", "-1", "--prices", prices)
    assert res.returncode == 2 and "Invalid value for '--max-cost'" in res.stderr and "Traceback" not in res.stderr
    assert out.read_text() == "kept\n" and fake_llm.seen == []


# -- a cache that ignores the endpoint ---------------------------------------------------------------

def test_another_endpoint_is_not_answered_from_the_first_ones_cache(fake_llm, tmp_path):
    assert generate(fake_llm.url, tmp_path, out="a.jsonl").returncode == 0
    assert fake_llm.seen
    other = FakeLLMServer()
    try:
        res = generate(other.url, tmp_path, out="b.jsonl")
        assert res.returncode == 0, res.stderr
        assert len(other.bodies()) > 0, "the second server was never asked: its answers came from the cache"
    finally:
        other.close()
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        endpoints = {r[0] for r in db.execute("SELECT DISTINCT endpoint FROM requests")}
    assert endpoints == {fake_llm.url, other.url}


def test_cache_key_covers_endpoint_and_every_parameter():
    req = ChatRequest.of([{"role": "user", "content": "hi"}])
    base = cache_key("openai", "m", req, "http://a/v1")
    assert base != cache_key("openai", "m", req, "http://b/v1")
    assert base != cache_key("openai", "m", req, "")
    for change in ({"max_tokens": 7}, {"temperature": 0.1}, {"top_p": 0.5}, {"stop": ("x",)}, {"seed": 3}):
        assert cache_key("openai", "m", ChatRequest.of([{"role": "user", "content": "hi"}], **change),
                         "http://a/v1") != base, change
    # in-process teachers have no endpoint: their keys are the ones earlier versions wrote
    import hashlib

    old = hashlib.sha256(json.dumps({"provider": "local", "model": "m", **req.canonical()}, sort_keys=True,
                                    ensure_ascii=False).encode()).hexdigest()
    assert cache_key("local", "m", req) == old


def test_a_cache_file_from_before_the_endpoint_column_opens_and_keeps_its_ledger(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:   # the schema as the first version wrote it
        db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
        db.execute("INSERT INTO requests VALUES ('k', 'openai', 'fake', '{}', 'hi', 'stop', 3, 4, 0.5, 'j', 'now')")
    cache = RequestCache(path)
    try:
        assert cache.get("k").text == "hi"
        assert [(r.teacher, r.requests, r.cost) for r in cache.ledger()] == [("openai:fake", 1, 0.5)]
    finally:
        cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("SELECT endpoint FROM requests").fetchone()[0] == ""


# -- tracebacks instead of messages ------------------------------------------------------------------

def test_bad_yaml_in_prices_names_the_file_and_line(fake_llm, tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:fake: {input: 1, output: 2}\nopenai:other: {input: [1, output: 2}\n")
    res = generate(fake_llm.url, tmp_path, "--max-cost", "1", "--prices", prices)
    assert res.returncode == 2
    line = one_error_line(res)
    assert "prices.yaml:2" in line and "not valid YAML" in line


@pytest.mark.parametrize("command", ["generate", "ledger"])
def test_cache_that_is_not_sqlite_or_is_a_folder(fake_llm, tmp_path, command):
    (tmp_path / "notes.sqlite").write_text("these are my notes, not a database\n" * 50)
    (tmp_path / "folder.sqlite").mkdir()
    for cache, needle in (("notes.sqlite", "file is not a database"), ("folder.sqlite", "is a directory")):
        if command == "generate":
            res = generate(fake_llm.url, tmp_path, cache=cache)
        else:
            res = run_cli("ledger", "--cache", tmp_path / cache)
        assert res.returncode == 2, res.stderr
        line = one_error_line(res)
        assert cache in line and needle in line and "request cache" in line
        assert not (tmp_path / "out.jsonl").exists()
    assert fake_llm.seen == []


# -- a misleading message ----------------------------------------------------------------------------

def test_a_folder_given_as_the_seed_file_is_called_a_folder(fake_llm, tmp_path):
    for name in ("seeds.jsonl", "seeds"):
        folder = tmp_path / name
        folder.mkdir()
        for res in (run_cli("seeds", "inspect", folder), generate(fake_llm.url, tmp_path, seeds=folder)):
            assert res.returncode == 2
            line = one_error_line(res)
            assert name in line and "is a directory" in line and "not found" not in line


# -- input accepted without a word -------------------------------------------------------------------

def seeds_with_long_instruction(path, length: int):
    rows = [json.loads(line) for line in EXAMPLE_SEEDS.read_text().splitlines()[:5]]
    rows[2]["instruction"] = "Explain this statement. " + "x" * (length - 24)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_huge_instruction_is_named_and_not_printed_whole(tmp_path):
    seeds = seeds_with_long_instruction(tmp_path / "seeds.jsonl", 1_048_576)
    res = run_cli("seeds", "inspect", seeds, "--show", "5")
    assert res.returncode == 0, res.stderr
    assert "seeds.jsonl:3 field 'instruction': 1,048,576 characters" in res.stderr.replace("\n", "")
    assert len(res.stdout) < 20_000   # a preview, not the megabyte


def test_generate_warns_about_a_long_instruction_it_sends(fake_llm, tmp_path):
    # (a megabyte would pass the fake server's request size limit; the warning is the same)
    seeds = seeds_with_long_instruction(tmp_path / "seeds.jsonl", 30_000)
    res = generate(fake_llm.url, tmp_path, seeds=seeds, n=2)
    assert res.returncode == 0, res.stderr
    assert "seeds.jsonl:3 field 'instruction': 30,000 characters" in res.stderr.replace("\n", "")
