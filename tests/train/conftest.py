"""Shared fixtures: a tiny random Llama with the packaged tokenizer, and small record tables."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from train.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def sentiment_frame(n: int = 40):
    """A learnable toy task: the answer is in the input's last word."""
    from seedloop.core.record import new_record, to_frame

    return to_frame(new_record("Classify the sentiment of this review.", f"review {i}: {'great' if i % 2 else 'awful'}",
                               "positive" if i % 2 else "negative", status="accepted") for i in range(n))


@pytest.fixture
def sentiment():
    return sentiment_frame()
