"""`seedloop generate` end to end against local servers: lineage, resume after SIGKILL, budget,
unreachable endpoints. The fake server answers as a pure function of the request, so two runs can
be compared row by row and every request is counted where it arrives."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import datasets
import polars as pl
import pytest

from seedloop.core.record import DROP_SCHEMA
from seedloop.core.tables import read_table
from synth.seeds import load_seeds
from tests.conftest import EXAMPLE_SEEDS, free_port, run_cli

KEY = {"OPENAI_API_KEY": "sk-test-secret-0123456789"}


def generate(server, tmp_path, *extra, out="out.parquet", cache="cache.sqlite", n=12):
    return run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", n, "--out", tmp_path / out,
                   "--teacher", "openai:fake", "--base-url", server.url, "--cache", tmp_path / cache,
                   "--concurrency", 4, *extra, env=KEY)


def test_generate_writes_records_with_lineage(fake_llm, tmp_path):
    res = generate(fake_llm, tmp_path, "--drops", tmp_path / "drops.jsonl", "--hf-dataset", tmp_path / "hf")
    assert res.returncode == 0, res.stderr
    df = read_table(tmp_path / "out.parquet")
    seeds = load_seeds(EXAMPLE_SEEDS)
    assert len(df) == 12 and df["id"].n_unique() == 12
    assert set(df["source"]) == {"generated"} and set(df["teacher"]) == {"openai:fake"}
    assert all(p.startswith("self_instruct/instructions@") for p in df["prompt"])
    known = set(seeds["id"]) | set(df["id"])
    for parents in df["parents"].to_list():
        assert parents and set(parents) <= known  # seeds, or rows generated earlier
        assert set(parents) & set(seeds["id"])  # every row was shown real seeds
    assert not set(df["instruction"]) & set(seeds["instruction"])
    hf = datasets.load_from_disk(str(tmp_path / "hf"))
    assert hf.num_rows == 12 and hf[0]["id"] == df["id"][0]
    drops = [json.loads(line) for line in (tmp_path / "drops.jsonl").read_text().splitlines()]
    assert all(d["reason"] and d["stage"] and d["id"] and list(d) == list(DROP_SCHEMA) for d in drops)
    assert "sk-test-secret" not in res.stderr + res.stdout
    assert b"sk-test-secret" not in (tmp_path / "cache.sqlite").read_bytes()


def test_rerun_pays_for_nothing_twice_and_writes_the_same_rows(fake_llm, tmp_path):
    assert generate(fake_llm, tmp_path).returncode == 0
    first, sent = read_table(tmp_path / "out.parquet"), len(fake_llm.seen)
    res = generate(fake_llm, tmp_path)
    # every answer the rows need comes from the cache; the re-run may send requests of slots past those
    # (the first run stopped before sending them), at most --concurrency, and never one sent before
    assert res.returncode == 0 and len(fake_llm.seen) <= sent + 4
    assert len(set(fake_llm.bodies())) == len(fake_llm.bodies())
    assert read_table(tmp_path / "out.parquet").equals(first)


def test_output_is_independent_of_response_order(fake_llm, tmp_path):
    """Slot prompts depend only on earlier slots, so latency does not change what is generated."""
    assert generate(fake_llm, tmp_path, out="a.parquet", cache="a.sqlite").returncode == 0
    fake_llm.plan.latency = 0.05
    fake_llm.plan.faults = ["500", "429", "500"]  # retried requests come back later, out of order
    fake_llm.plan.retry_after = 0.1
    assert generate(fake_llm, tmp_path, out="b.parquet", cache="b.sqlite").returncode == 0
    assert read_table(tmp_path / "a.parquet").equals(read_table(tmp_path / "b.parquet"))


def test_evol_instruct(fake_llm, tmp_path):
    res = generate(fake_llm, tmp_path, "--method", "evol-instruct", n=6)
    assert res.returncode == 0, res.stderr
    df = read_table(tmp_path / "out.parquet")
    assert len(df) == 6
    assert all(len(p) == 1 for p in df["parents"].to_list())
    assert all(p.startswith("evol_instruct/") for p in df["prompt"])


@pytest.mark.slow
def test_sigkill_then_rerun_pays_for_nothing_twice(fake_llm, tmp_path):
    # the uninterrupted run, for reference, in its own cache
    assert generate(fake_llm, tmp_path, out="ref.parquet", cache="ref.sqlite", n=30).returncode == 0
    fake_llm.seen.clear()
    fake_llm.plan.latency = 0.15
    cmd = [sys.executable, "-m", "seedloop", "generate", "--seeds", str(EXAMPLE_SEEDS), "--n", "30",
           "--out", str(tmp_path / "out.parquet"), "--teacher", "openai:fake", "--base-url", fake_llm.url,
           "--cache", str(tmp_path / "cache.sqlite"), "--concurrency", "4"]
    proc = subprocess.Popen(cmd, env={**os.environ, **KEY}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(fake_llm.seen) < 25 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "out.parquet").exists()  # no half-written output
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        finished = {json.dumps(json.loads(r[0]), sort_keys=True) for r in db.execute("SELECT request FROM requests")}
    assert 0 < len(finished) < 60
    first_run = len(fake_llm.seen)
    fake_llm.plan.latency = 0.0
    res = generate(fake_llm, tmp_path, n=30)
    assert res.returncode == 0, res.stderr
    resent = [s.body for s in fake_llm.seen[first_run:]]
    canon = {json.dumps({"messages": b["messages"], "max_tokens": b["max_tokens"], "temperature": b["temperature"],
                         "top_p": b["top_p"], "stop": b.get("stop", []), "seed": b.get("seed")}, sort_keys=True)
             for b in resent}
    finished_canon = {json.dumps({k: v for k, v in json.loads(f).items()}, sort_keys=True) for f in finished}
    assert not canon & finished_canon, "a request completed before the kill was sent again"
    out, ref = read_table(tmp_path / "out.parquet"), read_table(tmp_path / "ref.parquet")
    assert out["id"].n_unique() == len(out) == 30
    assert out.drop("teacher").equals(ref.drop("teacher"))


def test_budget_stops_cleanly(fake_llm, tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:fake: {input: 2000, output: 2000}\n")
    res = generate(fake_llm, tmp_path, "--max-cost", "8.0", "--prices", prices, n=30)
    assert res.returncode == 0, res.stderr
    assert "stopped at the budget" in res.stderr
    df = read_table(tmp_path / "out.parquet")
    assert 0 < len(df) < 30
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        spent = db.execute("SELECT SUM(cost) FROM requests").fetchone()[0]
    assert spent <= 8.0
    ledger = run_cli("ledger", "--cache", tmp_path / "cache.sqlite")
    assert ledger.returncode == 0 and "openai:fake" in ledger.stdout


def test_unreachable_endpoint_fails_cleanly(tmp_path):
    out = tmp_path / "out.parquet"
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", 3, "--out", out, "--teacher", "openai:x",
                  "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--max-retries", 1,
                  "--cache", tmp_path / "c.sqlite", env=KEY)
    assert res.returncode == 1
    assert "cannot connect to http://127.0.0.1" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


def test_missing_key_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    res = subprocess.run([sys.executable, "-m", "seedloop", "generate", "--seeds", str(EXAMPLE_SEEDS), "--out",
                          str(tmp_path / "o.parquet"), "--teacher", "openai:gpt-4o-mini"],
                         capture_output=True, text=True, env={**env, "COLUMNS": "200"})
    assert res.returncode == 2
    assert "OPENAI_API_KEY is not set" in res.stderr and len(res.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "o.parquet").exists()


def test_bad_output_suffix(tmp_path):
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--out", tmp_path / "o.csv")
    assert res.returncode == 2 and "--out must end in .parquet or .jsonl" in res.stderr


def test_generation_drops_form_the_shared_drop_table():
    from seedloop.core.record import drop_table
    from synth.generate import _as_row

    drops = [{"reason": "near_duplicate", "text": "How do I close my account?", "stage": "instruction",
              "similar_to": "How can I close my account?", "similarity": 0.91234},
             {"reason": "refusal", "text": "I cannot help.", "stage": "response", "operation": "deepen",
              "instruction": "Explain card fees"},
             {"reason": "duplicate_id", "text": "Hi", "id": "abc", "instruction": "Hi", "input": "", "output": "Hello"}]
    table = drop_table(_as_row(d) for d in drops)
    assert table.columns == list(DROP_SCHEMA)
    rows = table.to_dicts()
    assert rows[0]["instruction"] == "How do I close my account?" and rows[0]["output"] is None
    assert rows[0]["detail"] == "similar_to How can I close my account?; similarity 0.912"
    assert (rows[1]["instruction"], rows[1]["output"], rows[1]["stage"]) == ("Explain card fees", "I cannot help.",
                                                                              "response")
    assert rows[1]["detail"] == "operation deepen"
    assert (rows[2]["id"], rows[2]["output"], rows[2]["reason"]) == ("abc", "Hello", "duplicate_id")
    assert rows[0]["id"] and rows[0]["id"] != rows[1]["id"]


def test_generate_from_a_datasets_folder_writes_a_dataset_card(fake_llm, tmp_path):
    from huggingface_hub import DatasetCard

    rows = [json.loads(line) for line in EXAMPLE_SEEDS.read_text().splitlines() if line.strip()]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "seed_rows"))
    res = run_cli("generate", "--seeds", tmp_path / "seed_rows", "--n", 8, "--out", tmp_path / "out.parquet",
                  "--teacher", "openai:fake", "--base-url", fake_llm.url, "--cache", tmp_path / "cache.sqlite",
                  "--seed", 3, "--temperature", 0.5, "--drops", tmp_path / "drops.parquet",
                  "--hf-dataset", tmp_path / "hf", "--license", "CC-BY-4.0", env=KEY)
    assert res.returncode == 0, res.stderr
    df, drops = read_table(tmp_path / "out.parquet"), pl.read_parquet(tmp_path / "drops.parquet")
    card = DatasetCard.load(tmp_path / "hf" / "README.md")
    facts = card.data.seedloop
    assert card.data.license == "cc-by-4.0" and card.data.pretty_name == "hf (seedloop generate)"
    assert facts["rows"] == df.height == 8 and facts["by_source"] == {"generated": 8}
    assert facts["teachers"] == {"openai:fake": 8} and facts["sources"] == ["seed_rows"]
    templates = {(p.rpartition("@")[0], p.rpartition("@")[2]): n for p, n in df["prompt"].value_counts().iter_rows()}
    assert {(t["template"], t["hash"]): t["rows"] for t in facts["prompts"]} == templates
    assert facts["settings"] == {"teacher": "openai:fake", "method": "self-instruct", "n": 8, "seed": 3,
                                 "temperature": 0.5, "classify": "auto"}
    assert facts["dropped"] == dict(drops["reason"].value_counts().iter_rows())
    assert datasets.load_from_disk(str(tmp_path / "hf"))["id"] == df["id"].to_list()
