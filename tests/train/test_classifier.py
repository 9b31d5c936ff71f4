"""Classifier students on real tiny models: they learn a separable task, save and load, warm-start,
and give probabilities known in advance once their head is edited."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file, save_file

from seedloop.core.record import new_record, to_frame
from tests.conftest import run_cli

WORDS = {"fruit": ("apple", "banana", "cherry"), "vehicle": ("car", "truck", "bus"), "tool": ("hammer", "saw", "drill")}


def topic_frame(per_label: int, *, offset: int = 0, labels=("fruit", "vehicle", "tool")) -> pl.DataFrame:
    """The label is the topic of the message's one content word: separable by a bag of words."""
    rows = []
    for i in range(offset, offset + per_label):
        for label in labels:
            word = WORDS[label][i % 3]
            rows.append(new_record("Which topic?", f"message {i} is about the {word}", label, status="accepted"))
    return to_frame(rows)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    from train.models import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


def _accuracy(folder, frame) -> float:
    from train.classifier import labelled_pairs
    from train.classifier_model import load_classifier

    clf = load_classifier(folder)
    texts, labels, _, _ = labelled_pairs(frame)
    guesses = [clf.labels[i] for i in clf.predict_proba(texts).argmax(axis=1)]
    return float(np.mean([g == y for g, y in zip(guesses, labels)]))


def test_encoder_classifier_learns_and_reloads(tiny_encoder, tmp_path):
    from train.classifier import train_classifier

    metrics = train_classifier(topic_frame(8), tiny_encoder, tmp_path / "clf", epochs=15, lr=3e-3, head_lr=3e-2)
    meta = json.loads((tmp_path / "clf" / "classifier.json").read_text())
    assert meta["labels"] == ["fruit", "tool", "vehicle"] and meta["pooling"] == "mean"
    assert metrics["task"] == "classification" and metrics["train_examples"] == 24
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    assert _accuracy(tmp_path / "clf", topic_frame(4, offset=50)) == 1.0   # unseen messages, same words


def test_causal_lm_classifier_trains_in_4bit(tiny_model, tmp_path):
    from bitsandbytes.nn import Linear4bit

    from train.classifier import train_classifier
    from train.classifier_model import load_classifier

    train_classifier(topic_frame(8), tiny_model, tmp_path / "clf", epochs=15, lr=3e-3, head_lr=3e-2)
    clf = load_classifier(tmp_path / "clf")
    assert clf.pooling == "last" and any(isinstance(m, Linear4bit) for m in clf.model.modules())
    probs = clf.predict_proba(["message 99 is about the saw", "the car"])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert _accuracy(tmp_path / "clf", topic_frame(4, offset=50)) >= 0.9


def _edit_head(folder, weight_fn, bias_fn):
    path = folder / "adapter_model.safetensors"
    state = load_file(path)
    for key in list(state):
        if ".head." in f".{key}.":
            state[key] = weight_fn(state[key]) if key.endswith("weight") else bias_fn(state[key])
    save_file(state, path)


def test_edited_heads_give_known_probabilities(tiny_encoder, tmp_path):
    from active_learning.uncertainty import label_entropy, margin
    from train.classifier import train_classifier
    from train.classifier_model import load_classifier

    train_classifier(topic_frame(2), tiny_encoder, tmp_path / "clf", epochs=1)
    texts = ["message 1 is about the bus", "something else entirely"]
    _edit_head(tmp_path / "clf", torch.zeros_like, torch.zeros_like)          # every logit 0: uniform
    flat = load_classifier(tmp_path / "clf").predict_proba(texts)
    assert np.allclose(flat, 1 / 3, atol=1e-6)
    assert np.allclose(label_entropy(np.log(flat)), 1.0) and np.allclose(margin(np.log(flat)), 1.0)
    _edit_head(tmp_path / "clf", torch.zeros_like, lambda b: torch.tensor([0.0, 50.0, 0.0]))  # label 1 wins
    sure = load_classifier(tmp_path / "clf").predict_proba(texts)
    assert (sure.argmax(axis=1) == 1).all() and np.allclose(label_entropy(np.log(sure)), 0.0, atol=1e-12)


def test_warm_start_keeps_old_labels_rows_and_adds_new_ones(tiny_encoder, tmp_path):
    from train.classifier import train_classifier

    train_classifier(topic_frame(4, labels=("fruit", "vehicle")), tiny_encoder, tmp_path / "r1", epochs=2)
    train_classifier(topic_frame(4), tiny_encoder, tmp_path / "r2", epochs=1, init_adapter=tmp_path / "r1")
    meta = json.loads((tmp_path / "r2" / "classifier.json").read_text())
    assert meta["labels"] == ["fruit", "vehicle", "tool"]      # the old order, the new label last
    old = {k: v for k, v in load_file(tmp_path / "r1" / "adapter_model.safetensors").items() if ".head." in k}
    new = {k: v for k, v in load_file(tmp_path / "r2" / "adapter_model.safetensors").items() if ".head." in k}
    weight = next(k for k in old if k.endswith("weight"))
    # one epoch at a small step moves the carried rows a little, not back to random
    assert torch.nn.functional.cosine_similarity(old[weight], new[weight][:2]).min() > 0.5


def test_pick_task_reads_the_outputs():
    from train.task import pick_task

    assert pick_task(topic_frame(3)) == "classification"
    free = to_frame(new_record(f"Write a poem {i}", "", f"a poem number {i} about the sea", status="accepted")
                    for i in range(6))
    assert pick_task(free) == "generation"
    assert pick_task(topic_frame(3), "generation") == "generation"


def test_cli_trains_and_evaluates_a_classifier(tiny_encoder, tmp_path):
    from seedloop.core.tables import write_table

    write_table(topic_frame(8), tmp_path / "train.parquet")
    write_table(topic_frame(4, offset=40), tmp_path / "test.parquet")
    trained = run_cli("train", "--data", tmp_path / "train.parquet", "--base", tiny_encoder, "--out", tmp_path / "clf",
                      "epochs=15", "lr=3e-3", "head_lr=3e-2")
    assert trained.returncode == 0, trained.stderr
    assert "classification" in trained.stderr and (tmp_path / "clf" / "metrics.json").is_file()
    evaluated = run_cli("evaluate", "--model", tmp_path / "clf", "--data", tmp_path / "test.parquet",
                        "--out", tmp_path / "eval.json", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["records"] == 12 and metrics["not_a_label"] == 0.0
    assert json.loads(evaluated.stdout) == metrics                    # --json: the metrics alone on stdout

    # both exports are classifiers that evaluate the same way: the adapter copied, and LoRA merged
    for name, flags in (("copy", []), ("merged", ["--merge", "--dtype", "fp32"])):
        exported = run_cli("export", tmp_path / "clf", "--out", tmp_path / name, *flags)
        assert exported.returncode == 0, exported.stderr
        again = run_cli("evaluate", "--model", tmp_path / name, "--data", tmp_path / "test.parquet", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["accuracy"] == 1.0
    assert not (tmp_path / "merged" / "adapter_config.json").exists()


def test_merged_encoder_classifier_gives_the_same_probabilities(tiny_encoder, tmp_path):
    from transformers import AutoModel

    from train.classifier import train_classifier
    from train.classifier_model import load_classifier
    from train.export import merge_adapter

    train_classifier(topic_frame(8), tiny_encoder, tmp_path / "clf", epochs=3, lr=3e-3, head_lr=3e-2)
    merge_adapter(tmp_path / "clf", tmp_path / "merged", dtype="fp32")
    texts = ["message 99 is about the saw", "the car", "a banana and a drill"]
    before = load_classifier(tmp_path / "clf").predict_proba(texts)
    after = load_classifier(tmp_path / "merged").predict_proba(texts)
    assert np.allclose(before, after, atol=1e-5)
    AutoModel.from_pretrained(tmp_path / "merged")              # the encoder alone is a plain HF model


def test_merged_causal_lm_classifier_names_its_labels(tiny_model, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from train.classifier import train_classifier
    from train.export import merge_adapter

    train_classifier(topic_frame(8), tiny_model, tmp_path / "clf", epochs=15, lr=3e-3, head_lr=3e-2)
    merge_adapter(tmp_path / "clf", tmp_path / "merged", dtype="fp32")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    assert model.config.id2label == {0: "fruit", 1: "tool", 2: "vehicle"}
    assert _accuracy(tmp_path / "merged", topic_frame(4, offset=50)) >= 0.9


def test_labels_outside_the_given_list_are_refused(tiny_encoder, tmp_path):
    from seedloop.core.errors import InputError
    from train.classifier import train_classifier

    with pytest.raises(InputError, match="not in the label list: tool"):
        train_classifier(topic_frame(2), tiny_encoder, tmp_path / "clf", labels=["fruit", "vehicle"], epochs=1)
