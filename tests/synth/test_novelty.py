"""ROUGE-L and the online near-duplicate index, checked against `rouge_score`, the reference
implementation Self-Instruct used, on real Banking77 messages."""

from __future__ import annotations

import random

import polars as pl
import pytest
from rouge_score import rouge_scorer

from seedloop.core.text import rouge_l, tokens
from synth.novelty import RougeNoveltyIndex
from tests.conftest import BANKING77

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


@pytest.fixture(scope="module")
def messages():
    texts = pl.read_csv(BANKING77)["text"].to_list()
    random.Random(0).shuffle(texts)
    return texts[:400]


def test_rouge_l_matches_rouge_score(messages):
    rng = random.Random(1)
    for _ in range(300):
        a, b = rng.sample(messages, 2)
        assert rouge_l(a, b) == pytest.approx(SCORER.score(a, b)["rougeL"].fmeasure, abs=1e-12)
    assert tokens("Hello, WORLD! it's 3pm") == ["hello", "world", "it", "s", "3pm"]


def planted(messages):
    """Messages plus near copies of some of them (one word dropped or changed), shuffled."""
    rng = random.Random(2)
    out = list(messages)
    for text in rng.sample(messages, 60):
        words = text.split()
        if len(words) > 4:
            i = rng.randrange(len(words))
            out.append(" ".join(words[:i] + words[i + 1:]) if rng.random() < 0.5
                       else " ".join(words[:i] + ["really"] + words[i + 1:]))
    rng.shuffle(out)
    return out


def test_index_decides_exactly_like_brute_force(messages):
    stream = planted(messages)
    index = RougeNoveltyIndex(0.7)
    kept: list[str] = []
    pairs = 0
    for text in stream:
        hit = index.nearest(text)
        best = max((SCORER.score(k, text)["rougeL"].fmeasure for k in kept), default=0.0)
        pairs += len(kept)
        assert (hit is not None) == (best >= 0.7), (text, best, hit)
        if hit is not None:
            assert hit[1] == pytest.approx(best, abs=1e-9)
        else:
            index.add(text)
            kept.append(text)
    assert len(kept) < len(stream) - 30  # the planted copies were caught
    # prefix filtering: far fewer exact LCS computations than comparing with everything kept
    print(f"pairs {pairs}, visited {index.visited}, LCS computed {index.comparisons}")
    assert index.visited < pairs / 3
    assert index.comparisons < pairs / 20


def test_threshold_must_be_in_range():
    with pytest.raises(ValueError):
        RougeNoveltyIndex(0.0)
    with pytest.raises(ValueError):
        RougeNoveltyIndex(1.5)
