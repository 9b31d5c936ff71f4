"""Bad input through the command line: a clear message, exit code 2, and nothing half-written."""

from __future__ import annotations

import json
import shutil

import pytest

from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import write_table
from tests.conftest import run_cli
from tests.train.conftest import sentiment_frame

FAST = ["batch_size=4", "max_steps=2", "eval_every=2", "max_length=96", "gradient_checkpointing=false"]


def test_empty_table(tmp_path, tiny_model):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = run_cli("train", "--data", empty, "--base", tiny_model, "--out", tmp_path / "out", "--report-to", "none")
    assert done.returncode == 2
    assert "empty.jsonl" in done.stderr and "no training examples" in done.stderr
    assert not (tmp_path / "out").exists()


def test_only_rejected_rows_count_as_no_examples(tmp_path, tiny_model):
    table = write_table(to_frame([new_record("Say hi.", "", "hi", status="rejected")] * 3), tmp_path / "t.parquet")
    done = run_cli("train", "--data", table, "--base", tiny_model, "--out", tmp_path / "out", "--report-to", "none")
    assert done.returncode == 2 and "rejected=3" in done.stderr


def test_base_that_does_not_exist(tmp_path):
    table = write_table(sentiment_frame(4), tmp_path / "t.parquet")
    done = run_cli("train", "--data", table, "--base", tmp_path / "no-such-model", "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "no-such-model" in done.stderr and "base model folder does not exist" in done.stderr
    assert not (tmp_path / "out").exists()


def test_bad_override_names_the_key(tmp_path):
    table = write_table(sentiment_frame(4), tmp_path / "t.parquet")
    done = run_cli("train", "--data", table, "--out", tmp_path / "out", "lora_rank=8")
    assert done.returncode == 2 and "did you mean 'lora_r'" in done.stderr


@pytest.fixture(scope="module")
def templateless(tiny_model, tmp_path_factory):
    """The tiny model with its chat template removed, as many base (non-instruct) models ship."""
    folder = tmp_path_factory.mktemp("bare") / "model"
    shutil.copytree(tiny_model, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_model_without_chat_template_and_an_overlong_record(tmp_path, templateless):
    records = sentiment_frame(12).to_dicts() + [new_record("Summarize this.", "word " * 300, "short", status="accepted")]
    table = write_table(to_frame(records), tmp_path / "t.jsonl")
    refused = run_cli("train", "--data", table, "--base", templateless, "--out", tmp_path / "strict",
                      "--report-to", "none", "chat_template=model", *FAST)
    assert refused.returncode == 2 and "has no chat template" in refused.stderr
    done = run_cli("train", "--data", table, "--base", templateless, "--out", tmp_path / "out", "--report-to", "none",
                   *FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fallback:chatml" in done.stderr and "records too long" in done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["chat_template"] == "fallback:chatml" and metrics["data"]["counts"]["too_long"] == 1
    # the template used is saved with the adapter, so inference renders prompts the same way
    assert "<|im_start|>" in (tmp_path / "out" / "chat_template.jinja").read_text()
