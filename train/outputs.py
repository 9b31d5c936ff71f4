"""The output folder of a training run, written so that a crash never leaves a half-finished one.

    OUT/adapter_model.safetensors, adapter_config.json   the LoRA adapter (peft)
    OUT/tokenizer.json, tokenizer_config.json, chat_template.jinja
    OUT/train_config.yaml                                the full resolved config
    OUT/loss_curve.png                                   train and eval loss against steps
    OUT/metrics.json                                     its presence means "complete"
    OUT/README.md                                        the model card (train/card.py), after metrics.json
    OUT/mlruns/                                          MLflow's file store (report_to=mlflow)

Checkpoints (OUT/checkpoints/) are removed once the run is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from seedloop.core.atomic import write_text
from train.card import write_model_card
from train.config import dump
from train.tracking import plot_losses


def write_outputs(out: Path, model, tokenizer, settings: dict, metrics: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stale = out / "metrics.json"
    if stale.exists():
        stale.unlink()   # until the new metrics land, the folder does not claim to be complete
    with tempfile.TemporaryDirectory(dir=out, prefix=".adapter-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name in os.listdir(tmp):
            os.replace(Path(tmp) / name, out / name)
    write_text(out / "train_config.yaml", dump(settings))
    plot_losses(metrics["history"], metrics["evals"], out / "loss_curve.png")
    write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    write_model_card(out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
