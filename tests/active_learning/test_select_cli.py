"""`seedloop select` as users run it: picks to files and to a real Label Studio, and bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import read_table, write_table
from tests.conftest import run_cli

LABELS = "positive,negative"


def pool_table(tmp_path, n=6):
    recs = [new_record("Classify the sentiment of this review.", f"review {i}: {w}", source="pool")
            for i, w in enumerate(["great", "awful", "fine", "superb", "bad", "meh", "good", "poor"][:n])]
    return write_table(to_frame(recs), tmp_path / "pool.jsonl"), recs


@pytest.mark.slow
def test_push_sends_picks_with_answer_and_score(label_studio, project_name, flat_model, tmp_path):
    pool, recs = pool_table(tmp_path)
    args = ("select", "--model", flat_model, "--pool", pool, "--k", "3", "--strategy", "margin", "--labels", LABELS,
            "--round", "2", "--push", project_name, "--out", tmp_path / "picks.parquet",
            "--scores", tmp_path / "all.parquet")
    done = run_cli(*args, env=label_studio.env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert label_studio.token not in done.stdout + done.stderr
    picks, scores = read_table(tmp_path / "picks.parquet"), read_table(tmp_path / "all.parquet")
    assert picks.height == 3 and scores.height == len(recs)

    conn = label_studio.connect()
    [proj] = [p for p in conn.sdk.projects.list(title=project_name) if p.title == project_name]
    tasks = list(conn.sdk.tasks.list(project=proj.id, fields="all"))
    assert sorted(t.data["record_id"] for t in tasks) == sorted(picks["id"].to_list())
    answers = dict(zip(picks["id"], picks["output"]))
    for t in tasks:
        [pred] = conn.sdk.tasks.get(t.id).predictions
        assert pred.model_version == "round-2"
        assert pred.score == pytest.approx(1.0)             # a flat model: margin 1 for every item
        assert pred.result[0]["value"]["text"] == [answers[t.data["record_id"]]]
        assert answers[t.data["record_id"]] in LABELS.split(",")

    again = run_cli(*args, env=label_studio.env())          # a re-run pushes nothing twice
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list(conn.sdk.tasks.list(project=proj.id))) == 3


def test_picks_are_printed_without_outputs(flat_model, tmp_path):
    pool, _ = pool_table(tmp_path)
    done = run_cli("select", "--model", flat_model, "--pool", pool, "--k", "2", "--strategy", "label_entropy",
                   "--labels", LABELS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 picked of 6" in done.stdout and "review" in done.stdout


def test_empty_pool(flat_model, tmp_path):
    pool = tmp_path / "empty.jsonl"
    pool.write_text(json.dumps({"instruction": "x"}) + "\n")
    write_table(read_table(pool).head(0), tmp_path / "empty.parquet")
    done = run_cli("select", "--model", flat_model, "--pool", tmp_path / "empty.parquet", "--k", "1")
    assert done.returncode == 2 and "pool is empty" in done.stderr, done.stderr[-2000:]


def test_k_larger_than_the_pool(flat_model, tmp_path):
    pool, _ = pool_table(tmp_path)
    done = run_cli("select", "--model", flat_model, "--pool", pool, "--k", "7", "--out", tmp_path / "picks.parquet")
    assert done.returncode == 2 and "--k must be between 1 and the pool size (6)" in done.stderr
    assert not (tmp_path / "picks.parquet").exists()


def test_label_strategy_without_labels(flat_model, tmp_path):
    pool, _ = pool_table(tmp_path)
    done = run_cli("select", "--model", flat_model, "--pool", pool, "--k", "2", "--strategy", "margin")
    assert done.returncode == 2 and "needs the label set" in done.stderr


def test_adapter_whose_base_is_missing(tiny_base, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    moved = shutil.copytree(tiny_base, tmp_path / "base-that-will-go")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(moved, dtype=torch.float32),
                           LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(moved).save_pretrained(tmp_path / "adapter")
    shutil.rmtree(moved)
    pool, _ = pool_table(tmp_path)
    done = run_cli("select", "--model", tmp_path / "adapter", "--pool", pool, "--k", "2",
                   "--out", tmp_path / "picks.parquet")
    assert done.returncode == 2 and "cannot find the base model" in done.stderr, done.stderr[-2000:]
    assert str(tmp_path / "adapter") in done.stderr and not (tmp_path / "picks.parquet").exists()
