"""Kill training after a checkpoint, resume, and end exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT, run_cli
from tests.train.conftest import sentiment_frame
from seedloop.core.tables import write_table
from train.config import resolve
from train.recipe import train

SETTINGS = ["batch_size=4", "max_steps=30", "save_every=3", "eval_every=10", "lr=5e-3", "max_length=128",
            "gradient_checkpointing=false", "keep_checkpoints=2"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tiny_model, tmp_path):
    data = write_table(sentiment_frame(60), tmp_path / "data.parquet")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "seedloop", "train", "--data", str(data), "--base", str(tiny_model), "--out", str(out),
           "--report-to", "none", *SETTINGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=ROOT)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("step-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"training ended before it could be killed: {proc.stderr.read()[-2000:]}"
    assert not (out / "metrics.json").exists()
    [checkpoint] = sorted((out / "checkpoints").glob("step-*"))[-1:]
    killed_at = int(checkpoint.name.split("-")[1])
    assert 0 < killed_at < 30
    saved = torch.load(checkpoint / "trainer.pt", weights_only=False)["optimizer"]["state"]
    assert saved and all(int(s["step"]) == killed_at for s in saved.values())   # Adam's moments were saved

    # without --resume, the folder is not silently overwritten
    refused = run_cli("train", "--data", data, "--base", tiny_model, "--out", out, "--report-to", "none", *SETTINGS)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resumed = run_cli("train", "--data", data, "--base", tiny_model, "--out", out, "--report-to", "none", "--resume",
                      *SETTINGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from" in resumed.stderr and f"(step {killed_at})" in resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 30 and [h["step"] for h in metrics["history"]] == list(range(1, 31))

    reference = train(sentiment_frame(60), tiny_model, tmp_path / "reference",
                      **resolve(None, SETTINGS, report_to="none"))
    assert reference["steps"] == 30
    mine, theirs = load_file(out / "adapter_model.safetensors"), load_file(tmp_path / "reference" / "adapter_model.safetensors")
    assert mine.keys() == theirs.keys()
    for name in mine:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-5, atol=1e-6)
    assert [h["loss"] for h in metrics["history"]] == pytest.approx([h["loss"] for h in reference["history"]], rel=1e-5)

    # a finished run re-run with --resume converges: nothing trains, the same metrics come back
    again = run_cli("train", "--data", data, "--base", tiny_model, "--out", out, "--report-to", "none", "--resume",
                    *SETTINGS)
    assert again.returncode == 0 and json.loads((out / "metrics.json").read_text()) == metrics
