"""Model cards: a trained classifier's README.md parses as a Hugging Face model card and states the
base, the labels, the lineage counted by hand here, the config and the licence; evaluation metrics
added later survive a copy and a merge."""

from __future__ import annotations

import json

import polars as pl
import pytest
from huggingface_hub import ModelCard

from tests.train.test_classifier import tiny_encoder, topic_frame  # noqa: F401 (fixture)

# rows 0-5 are seeds, the rest human labels from two annotators in rounds 1 and 2; rows 18-20 edited
ANNOTATORS = ["ann-a"] * 10 + ["ann-b"] * 8


def _lineage_frame() -> pl.DataFrame:
    df = topic_frame(8)                                                   # 24 rows
    n = df.height
    source = ["seed"] * 6 + ["human"] * (n - 6)
    status = ["accepted"] * 18 + ["edited"] * 3 + ["accepted"] * (n - 21)
    rounds = [0] * 6 + [1] * 9 + [2] * (n - 15)
    review = [None] * 6 + [{"annotator": a} for a in ANNOTATORS]
    return df.with_columns(pl.Series("source", source), pl.Series("status", status),
                           pl.Series("round", rounds, dtype=pl.Int32),
                           pl.Series("review", review, dtype=df.schema["review"]))


@pytest.fixture(scope="module")
def trained(tiny_encoder, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    from train.classifier import train_classifier

    folder = tmp_path_factory.mktemp("card") / "clf"
    train_classifier(_lineage_frame(), tiny_encoder, folder, epochs=2)
    return folder


def _section(text: str, title: str) -> str:
    return text.split(f"### {title}\n")[1].split("###")[0]


def test_trained_classifier_carries_a_card_with_its_lineage(trained, tiny_encoder):  # noqa: F811
    card = ModelCard.load(trained / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "peft" and data["pipeline_tag"] == "text-classification"
    assert data["license"] == "other"                                     # the tiny base's folder names none
    assert data["base_model"] == json.loads((tiny_encoder / "config.json").read_text()).get("_name_or_path",
                                                                                          str(tiny_encoder))
    text = card.text
    assert "Labels (3): fruit, tool, vehicle." in text
    assert "| seed | 6 |" in _section(text, "By source") and "| human | 18 |" in _section(text, "By source")
    assert "| accepted | 21 |" in _section(text, "By status") and "| edited | 3 |" in _section(text, "By status")
    assert [line for line in _section(text, "By round").splitlines() if line.startswith("| ") and "count" not in line] \
        == ["| 0 | 6 |", "| 1 | 9 |", "| 2 | 9 |"]
    assert "| ann-a | 10 |" in _section(text, "Reviewers") and "| ann-b | 8 |" in _section(text, "Reviewers")
    assert "24 rows in the training table, 3 distinct outputs" in text
    assert "epochs: 2" in text.split("## Training config")[1]
    assert "Not evaluated yet" in text


def test_evaluation_survives_copy_and_merge(trained, tmp_path):
    from train.card import write_model_card
    from train.export import copy_adapter, merge_adapter

    folder = tmp_path / "promoted"
    copy_adapter(trained, folder)
    write_model_card(folder, evaluation={"accuracy": 0.875, "records": 40})
    for out, merge in ((tmp_path / "copy", False), (tmp_path / "merged", True)):
        merge_adapter(folder, out, dtype="fp32") if merge else copy_adapter(folder, out)
        card = ModelCard.load(out / "README.md")
        assert "| accuracy | 0.875 |" in card.text and "| records | 40 |" in card.text
        assert card.data.library_name == ("transformers" if merge else "peft")
        assert "| human | 18 |" in card.text                              # the lineage too


def test_a_base_folders_own_card_gives_the_licence():
    from seedloop.core.models import packaged_encoder
    from train.card import _base_identity

    assert _base_identity(str(packaged_encoder()), None)[1] == "apache-2.0"   # read from the folder's README
