"""Selection with a classifier student: every strategy from its label probabilities, which an edited
head makes known in advance (all logits 0: uniform; one huge bias: certain)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import read_table, write_table
from tests.conftest import run_cli
from tests.train.test_classifier import _edit_head, topic_frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from train.classifier import train_classifier
    from train.models import tiny_bert

    root = tmp_path_factory.mktemp("clf-select")
    train_classifier(topic_frame(2), tiny_bert(root / "tiny-bert"), root / "clf", epochs=1)
    return root / "clf"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def pool(n=8):
    return to_frame(new_record("Which topic?", f"pool message {i} about the {w}", source="pool")
                    for i, w in enumerate(["car", "apple", "saw", "bus", "cherry", "drill", "truck", "banana"][:n]))


@pytest.mark.parametrize("strategy,expected", [("margin", 1.0), ("label_entropy", 1.0), ("mnlp", np.log(3))])
def test_a_uniform_head_is_as_unsure_as_it_gets(trained, tmp_path, strategy, expected):
    from active_learning import select_from_pool

    flat = _copy(trained, tmp_path / "flat")
    _edit_head(flat, torch.zeros_like, torch.zeros_like)
    chosen = select_from_pool(flat, pool(), 3, strategy=strategy, diversity=False)
    values = [s["uncertainty"] for s in chosen.scores["scores"].to_list()]
    assert np.allclose(values, expected, atol=1e-5)
    assert chosen.picks.height == 3 and set(chosen.scores["output"]) <= {"fruit", "tool", "vehicle"}


def test_a_certain_head_answers_its_label_with_no_doubt(trained, tmp_path):
    from active_learning import select_from_pool

    sure = _copy(trained, tmp_path / "sure")
    _edit_head(sure, torch.zeros_like, lambda b: torch.tensor([0.0, 0.0, 60.0]))   # vehicle
    chosen = select_from_pool(sure, pool(), 2, strategy="margin")
    assert set(chosen.scores["output"]) == {"vehicle"}
    assert max(s["uncertainty"] for s in chosen.scores["scores"].to_list()) < 1e-6


def test_disagreement_is_refused_for_a_classifier(trained):
    from active_learning import select_from_pool
    from seedloop.core.errors import ConfigError

    with pytest.raises(ConfigError, match="classifier"):
        select_from_pool(trained, pool(), 2, strategy="disagreement")


def test_cli_selects_with_a_classifier_without_labels(trained, tmp_path):
    write_table(pool(), tmp_path / "pool.parquet")
    done = run_cli("select", "--model", trained, "--pool", tmp_path / "pool.parquet", "--k", "3",
                   "--strategy", "margin", "--out", tmp_path / "picks.parquet")
    assert done.returncode == 0, done.stderr[-3000:]
    picks = read_table(tmp_path / "picks.parquet")
    assert picks.height == 3 and set(picks["output"]) <= {"fruit", "tool", "vehicle"}
