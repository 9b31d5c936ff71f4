"""`seedloop export --merge` and `seedloop evaluate` on a tiny trained adapter."""

from __future__ import annotations

import json

import polars as pl
import pytest
import torch

from seedloop.core.tables import read_table, write_table
from tests.conftest import run_cli
from tests.train.conftest import sentiment_frame
from train.evaluation import _label_metrics, detect_labels


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    from train.recipe import train

    root = tmp_path_factory.mktemp("trained")
    held_out = write_table(sentiment_frame(50).tail(10), root / "eval.parquet")
    train(sentiment_frame(40), tiny_model, root / "adapter", eval_data=held_out, report_to="none", batch_size=4,
          max_steps=6, eval_every=3, lr=1e-2, max_length=96, gradient_checkpointing=False, lora_dropout=0.0)
    return root / "adapter", held_out


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_merge_into_full_precision_base_matches_the_adapter(trained, tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter, _ = trained
    done = run_cli("export", adapter, "--merge", "--dtype", "fp32", "--out", tmp_path / "merged")
    assert done.returncode == 0, done.stderr[-2000:]
    merged_dir = tmp_path / "merged"
    config = json.loads((merged_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert (merged_dir / "chat_template.jinja").is_file()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    assert all(p.dtype == torch.float32 for p in merged.parameters())
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    plain = _logits(base, ids)
    with_adapter = _logits(PeftModel.from_pretrained(base, str(adapter)).eval(), ids)
    assert not torch.allclose(plain, with_adapter, atol=1e-3)   # the adapter changes something
    torch.testing.assert_close(_logits(merged, ids), with_adapter, atol=1e-4, rtol=1e-4)


def test_export_without_merge_copies_the_adapter(trained, tmp_path):
    adapter, _ = trained
    done = run_cli("export", adapter, "--out", tmp_path / "copy")
    assert done.returncode == 0, done.stderr[-2000:]
    names = {p.name for p in (tmp_path / "copy").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "chat_template.jinja", "metrics.json",
            "README.md"} <= names
    card = (tmp_path / "copy" / "README.md").read_text()                # the model card came along
    assert "pipeline_tag: text-generation" in card and "| accepted | 40 |" in card and "library_name: peft" in card
    bad = run_cli("export", tmp_path / "copy" / "nothing", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "adapter_config.json" in bad.stderr


def test_evaluate_reports_the_trainers_loss_and_label_metrics(trained, tmp_path):
    adapter, held_out = trained
    done = run_cli("evaluate", "--model", adapter, "--data", held_out, "--out", tmp_path / "m.json",
                   "--predictions", tmp_path / "p.jsonl")
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "m.json").read_text())
    trained_metrics = json.loads((adapter / "metrics.json").read_text())
    # the same records, model and loss as the trainer's held-out evaluation of the adapter it kept
    assert metrics["loss"] == pytest.approx(trained_metrics["best_eval_loss"], rel=2e-3)
    assert metrics["labels"] == 2 and {"accuracy", "label_accuracy", "not_a_label"} <= set(metrics)
    predictions = pl.read_ndjson(tmp_path / "p.jsonl")
    assert predictions.height == 10 and set(predictions["scored_label"]) <= {"positive", "negative"}
    assert metrics["label_accuracy"] == pytest.approx((predictions["scored_label"] == predictions["output"]).mean())


def test_evaluate_json_puts_the_metrics_alone_on_stdout(trained, tmp_path):
    adapter, held_out = trained
    done = run_cli("evaluate", "--model", adapter, "--data", held_out, "--json", "--out", tmp_path / "m.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("\n") == 1           # one line: a pipe gets nothing but the JSON object
    metrics = json.loads(done.stdout)
    assert metrics == json.loads((tmp_path / "m.json").read_text())
    assert metrics["records"] == 10 and {"loss", "accuracy", "label_accuracy"} <= set(metrics)


def test_scored_options_agree_with_each_records_own_score(trained, tokenizer):
    from train.inference import load_for_inference, response_logprobs, score_options

    adapter, held_out = trained
    model, tok = load_for_inference(adapter)
    records = read_table(held_out).to_dicts()[:4]
    options = ["positive", "negative", "neutral"]
    table = score_options(model, tok, records, options)
    own = response_logprobs(model, tok, records)
    for row, record, (logprob, tokens) in zip(table, records, own):
        # bf16 compute in different batch shapes: equal to about 1e-4 relative
        assert row[options.index(record["output"])] == pytest.approx(logprob, rel=1e-3)
        assert tokens == len(tok(record["output"] + "<|im_end|>\n", add_special_tokens=False)["input_ids"])


def test_label_detection_and_metrics_by_hand():
    assert detect_labels(["spam", "ham", "spam", "ham"]) == ["ham", "spam"]
    assert detect_labels(["a long free text answer number one", "another answer", "third"]) is None
    metrics = _label_metrics(["Spam", "ham.", "eggs", "spam"], ["spam", "ham", "ham", "ham"], ["ham", "spam"])
    assert metrics["accuracy"] == 0.5 and metrics["not_a_label"] == 0.25
    assert metrics["per_label_accuracy"] == {"ham": round(1 / 3, 4), "spam": 1.0}
