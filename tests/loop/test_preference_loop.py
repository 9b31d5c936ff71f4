"""`train.objective: sft+dpo` in the loop: round 1 has no verdicts, so SFT alone; the automatic reviewer
edits the tiny student's answers to the teacher's, so round 2 makes preference pairs (teacher's answer
chosen, student's rejected), trains SFT into sft/ and then DPO from it into adapter/."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import EXAMPLE_SEEDS, run_cli

pytestmark = pytest.mark.slow


def manifest(ws: Path, n: int) -> dict:
    return json.loads((ws / "rounds" / f"{n:03d}" / "manifest.json").read_text())


def test_sft_then_dpo_on_the_pairs_of_review(fake_llm, tmp_path):
    import train

    student = train.tiny_llama(tmp_path / "tiny", tie_embeddings=False)   # non-empty (wrong) answers
    ws = tmp_path / "ws"
    res = run_cli("init", ws, "--seeds", EXAMPLE_SEEDS, "--teacher", "openai:fake", "--n", "16", "--student",
                  student, "--k", "4", "--auto-review", "--train-set", "max_steps=2", "--train-set", "eval_every=2",
                  "--train-set", "save_every=2")
    assert res.returncode == 0, res.stderr
    config = ws / "seedloop.yaml"
    text = config.read_text()
    assert "objective: sft " in text
    config.write_text(text.replace("objective: sft ", "objective: sft+dpo ").replace(
        "dpo: {}", "dpo: {max_steps: 2, lr: 1.0e-3}"))
    environ = {"OPENAI_BASE_URL": fake_llm.url, "OPENAI_API_KEY": "sk-fake"}
    res = run_cli("cycle", ws, "--until", "2", env=environ, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]

    m1 = manifest(ws, 1)["steps"]
    assert m1["pairs"]["pairs"] == 0 and "dpo" not in m1 and "no preference pairs yet" in res.stderr
    reviewed = pl.read_parquet(ws / "rounds/001/reviewed.parquet")
    edited = reviewed.filter(pl.col("status") == "edited")
    assert edited.height >= 1

    m2 = manifest(ws, 2)["steps"]
    pairs = pl.read_parquet(ws / "rounds/002/pairs.parquet")
    assert m2["pairs"]["pairs"] == pairs.height >= 1
    # each pair: the reviewer's edit chosen, the student's answer it replaced rejected
    expected = {(r["id"], r["output"], r["review"]["original_output"]) for r in edited.to_dicts()
                if r["output"].strip() and r["review"]["original_output"].strip()
                and r["output"].strip() != r["review"]["original_output"].strip()}
    assert set(zip(pairs["id"], pairs["chosen"], pairs["rejected"])) == expected
    assert set(pairs["reviewer"]) == {"auto-reviewer"} and set(pairs["origin"]) == {"edit"}
    assert m2["train"]["init_adapter"] == str(ws / "rounds/001/adapter")
    assert (ws / "rounds/002/sft/adapter_model.safetensors").is_file()
    assert m2["dpo"]["init_adapter"] == str(ws / "rounds/002/sft") and m2["dpo"]["objective"] == "dpo"
    assert json.loads((ws / "rounds/002/adapter/metrics.json").read_text())["objective"] == "dpo"
    assert "eval.json" in {p.name for p in (ws / "rounds/002").iterdir()}   # the DPO adapter was evaluated

    # a second `cycle --until 2` changes nothing
    res = run_cli("cycle", ws, "--until", "2", env=environ, timeout=600)
    assert res.returncode == 0 and manifest(ws, 2)["steps"]["dpo"] == m2["dpo"]


def test_objective_dpo_is_refused_for_classifiers(tmp_path):
    ws = tmp_path / "ws"
    res = run_cli("init", ws, "--seeds", EXAMPLE_SEEDS, "--n", "4")
    assert res.returncode == 0, res.stderr
    config = ws / "seedloop.yaml"
    text = config.read_text()
    config.write_text(text.replace("objective: sft ", "objective: dpo ").replace("task: auto ", "task: classification ")
                      .replace("dpo: {}", "dpo: {beta: -1}"))
    res = run_cli("status", ws)
    assert res.returncode != 0
    assert "'train.objective' dpo trains generators, but 'train.task' is classification" in res.stderr
