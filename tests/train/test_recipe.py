"""The recipe on a tiny Llama: 4-bit layers, only LoRA changes, a complete output folder, warm starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from bitsandbytes.nn import Linear4bit

from tests.conftest import ROOT
from train.data import collate, encode_records
from train.recipe import setup_model, train, train_step

FAST = dict(batch_size=4, max_steps=8, eval_every=4, save_every=100, lr=5e-3, gradient_checkpointing=False,
            max_length=128)


def _snapshot(model) -> dict:
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    state.update({n: b.detach().clone() for n, b in model.named_buffers()})
    return state


def test_only_lora_parameters_change_and_layers_are_4bit(tiny_model, tokenizer, sentiment):
    from accelerate import Accelerator
    from transformers import get_scheduler

    model = setup_model(tiny_model, four_bit=True, dtype="auto", lora_r=8, lora_alpha=16, lora_dropout=0.0,
                         target_modules="all-linear", init_adapter=None, gradient_checkpointing=True)
    layer = model.base_model.model.model.layers[0]
    for linear in (layer.self_attn.q_proj, layer.self_attn.o_proj, layer.mlp.down_proj):
        assert isinstance(linear.base_layer, Linear4bit)
        assert linear.base_layer.weight.dtype == torch.uint8   # packed NF4, two weights a byte
    before = _snapshot(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    scheduler = get_scheduler("constant", optimizer)
    examples, _ = encode_records(list(sentiment.iter_rows(named=True)), tokenizer, max_length=128)
    for start in (0, 4, 8):
        batch = collate(examples[start:start + 4], pack=True, pad_id=0)
        train_step(model, optimizer, scheduler, [batch], accelerator=Accelerator(cpu=True), trainable=trainable,
                   max_grad_norm=1.0, total_targets=int((batch["targets"] != -100).sum()))
    after = _snapshot(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    lora = {n for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    assert changed == {n for n in lora if "lora_B" in n or "lora_A" in n}


@pytest.fixture(scope="module")
def first_round(tiny_model, tmp_path_factory):
    from tests.train.conftest import sentiment_frame

    out = tmp_path_factory.mktemp("rounds") / "round-1"
    df = sentiment_frame(40)
    df = df.with_columns(df["status"].scatter([0, 1], "rejected"))
    metrics = train(df, tiny_model, out, report_to="mlflow", **FAST)
    return out, metrics


def test_output_folder_is_complete(first_round):
    out, metrics = first_round
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
                 "train_config.yaml", "metrics.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = yaml.safe_load((out / "train_config.yaml").read_text())
    assert config["lr"] == FAST["lr"] and config["four_bit"] is True and config["pack"] is True
    assert metrics["data"]["counts"]["rejected"] == 2
    assert metrics["data"]["train_examples"] + metrics["data"]["eval_examples"] == 38
    assert metrics["steps"] == 8 and [e["step"] for e in metrics["evals"]] == [0, 4, 8]
    assert metrics["tokens_per_second"] > 0 and metrics["peak_rss_mb"] > 0
    losses = [h["loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0] and metrics["final_eval_loss"] < metrics["initial_eval_loss"]


def test_mlflow_file_store_holds_the_run(first_round):
    import mlflow

    out, metrics = first_round
    client = mlflow.MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    [experiment] = [e for e in client.search_experiments() if e.name == "seedloop"]
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["lora_r"] == "16"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [h["loss"] for h in metrics["history"]])


def test_warm_start_continues_from_the_previous_adapter_without_mlflow(first_round, tiny_model, tmp_path):
    """Round 2 starts where round 1 ended: its first eval loss is round 1's best. Runs in a fresh
    interpreter to show that report_to=none never imports MLflow."""
    out, metrics = first_round
    script = f"""
import json, sys
from tests.train.conftest import sentiment_frame
from train import train
df = sentiment_frame(40)
df = df.with_columns(df["status"].scatter([0, 1], "rejected"))
m = train(df, {str(tiny_model)!r}, {str(tmp_path / 'round-2')!r}, init_adapter={str(out)!r}, report_to="none",
          **{FAST!r})
print(json.dumps({{"initial": m["initial_eval_loss"], "mlflow": "mlflow" in sys.modules}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mlflow"] is False
    assert result["initial"] == pytest.approx(metrics["best_eval_loss"], rel=1e-4)


def test_early_stopping_stops_and_keeps_the_best_adapter(tiny_model, sentiment, tmp_path):
    # a threshold no improvement can meet: the first evaluation after step 0 counts as "no better"
    metrics = train(sentiment, tiny_model, tmp_path / "run", report_to="none", early_stopping_patience=1,
                    early_stopping_threshold=100.0, **{**FAST, "eval_every": 2})
    assert metrics["stopped_early"] and metrics["steps"] == 2 and metrics["best_step"] == 0


def test_plain_lora_with_activation_checkpointing_trains(tiny_model, sentiment, tmp_path):
    """The shipped `lora` config checkpoints activations on a full-precision base (no kbit preparation)."""
    metrics = train(sentiment, tiny_model, tmp_path / "lora", four_bit=False, report_to="none",
                    **{**FAST, "max_steps": 2, "gradient_checkpointing": True})
    assert metrics["steps"] == 2 and (tmp_path / "lora" / "adapter_model.safetensors").is_file()
