"""`accelerate launch` with two CPU processes (gloo) trains the same adapter as one process.

Each process takes half of every micro-batch; the step's target count is summed over both, so the
loss and gradient of a step are the same numbers as on one process, up to float rounding. Dropout is
off (its random masks differ between processes) and compute is fp32 so the comparison is tight.
Tolerance: per-step training loss and eval loss within 1e-4 relative, adapter weights within 1e-4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seedloop.core.tables import write_table
from tests.conftest import ROOT, free_port, run_cli
from tests.train.conftest import sentiment_frame


def uneven_frame(n: int):
    """Answers of 1 to 7 words, so the two processes' shares of a micro-batch have different target counts."""
    from seedloop.core.record import new_record, to_frame

    return to_frame(new_record("Repeat the last word as often as the number says.", f"{1 + i % 7} times: {w}",
                               " ".join([w] * (1 + i % 7)), status="accepted")
                    for i, w in enumerate(["card", "fee", "pin", "top-up"] * (n // 4)))

SETTINGS = ["batch_size=8", "max_steps=6", "eval_every=3", "save_every=100", "lr=5e-3", "max_length=128",
            "gradient_checkpointing=false", "lora_dropout=0", "dtype=fp32", "eval_fraction=0.25"]
CONFIG = ROOT / "train" / "configs" / "accelerate" / "ddp.yaml"


@pytest.mark.slow
def test_two_process_run_matches_one_process(tiny_model, tmp_path):
    data = write_table(uneven_frame(48), tmp_path / "data.parquet")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single = run_cli("train", "--data", data, "--base", tiny_model, "--out", tmp_path / "one", "--report-to", "none",
                     *SETTINGS, env=env)
    assert single.returncode == 0, single.stderr[-3000:]

    launch = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(CONFIG),
              "--num_processes", "2", "--main_process_port", str(free_port()),
              "-m", "seedloop", "train", "--data", str(data), "--base", str(tiny_model), "--out", str(tmp_path / "two"),
              "--report-to", "none", *SETTINGS]
    two = subprocess.run(launch, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert two.returncode == 0, two.stderr[-4000:]
    # the second process says nothing: one resolved config, one summary
    assert two.stderr.count("seedloop train") == 1, two.stderr[-3000:]

    one_m = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two_m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two_m["steps"] == one_m["steps"] == 6
    assert [h["tokens"] for h in two_m["history"]] == [h["tokens"] for h in one_m["history"]]
    losses_one = torch.tensor([h["loss"] for h in one_m["history"]])
    losses_two = torch.tensor([h["loss"] for h in two_m["history"]])
    assert torch.allclose(losses_two, losses_one, rtol=1e-4, atol=0), (losses_one, losses_two)
    assert losses_one[-1] < losses_one[0]   # it trained: the comparison is not between two untouched adapters
    evals_one = torch.tensor([e["eval_loss"] for e in one_m["evals"]])
    evals_two = torch.tensor([e["eval_loss"] for e in two_m["evals"]])
    assert torch.allclose(evals_two, evals_one, rtol=1e-4, atol=0), (evals_one, evals_two)

    a = load_file(tmp_path / "one" / "adapter_model.safetensors")
    b = load_file(tmp_path / "two" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4, worst


def test_sharded_training_is_refused_with_what_to_use(tiny_model, tmp_path):
    """FSDP/DeepSpeed would shard the model the loop evaluates and saves unwrapped: refuse, name DDP."""
    data = write_table(sentiment_frame(16), tmp_path / "data.parquet")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_FSDP": "true"}
    res = run_cli("train", "--data", data, "--base", tiny_model, "--out", tmp_path / "run", "--report-to", "none",
                  "max_steps=1", env=env)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "FSDP" in res.stderr and "ddp.yaml" in res.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
