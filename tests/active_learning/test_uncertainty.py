"""Uncertainty scores on cases with a known answer, and batch diversity on planted near-copies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from active_learning import uncertainty as u
from active_learning.batch import random_batch, select_batch
from seedloop.core.errors import InputError


def test_mnlp_and_entropy_by_hand():
    assert u.mnlp([math.log(0.5), math.log(0.25)]) == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)
    assert u.mnlp([0.0, 0.0]) == 0.0                        # certain of every token
    assert u.mean_entropy([0.0, math.log(4)]) == pytest.approx(math.log(4) / 2)
    assert u.mnlp([]) == math.inf                           # no answer: maximally unsure


def test_label_scores_peaked_vs_flat():
    k = 4
    peaked = np.log(np.array([[0.97, 0.01, 0.01, 0.01]]))
    flat = np.log(np.full((1, k), 1 / k))
    # sequence log-probs need not sum to 1 over the options: only their ratios matter
    shifted = flat - 7.0
    assert u.label_entropy(flat)[0] == pytest.approx(1.0)
    assert u.label_entropy(shifted)[0] == pytest.approx(1.0)
    assert u.label_entropy(peaked)[0] < 0.15
    assert u.margin(flat)[0] == pytest.approx(1.0)
    assert u.margin(peaked)[0] == pytest.approx(1 - (0.97 - 0.01))
    two = np.log(np.array([[0.6, 0.4]]))
    assert u.margin(two)[0] == pytest.approx(0.8)
    assert u.label_entropy(two)[0] == pytest.approx(-(0.6 * math.log(0.6) + 0.4 * math.log(0.4)) / math.log(2))


def test_disagreement():
    assert u.disagreement(["card_lost"] * 5) == 0.0
    assert u.disagreement(["a", "b", "a", "c", "a"]) == pytest.approx(0.4)
    assert u.disagreement(["A ", "a"]) == 0.0


def test_diversity_takes_one_of_planted_near_copies():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    top = 7
    copies = [40, 41, 42, 43]  # near-copies of the most uncertain item
    noise = rng.normal(scale=0.01, size=(4, 16))
    x = np.vstack([x, x[top] + noise])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = rng.uniform(0, 0.5, size=44)
    scores[top] = 1.0
    scores[copies] = [0.99, 0.98, 0.97, 0.96]       # all five would top a plain ranking
    plain = select_batch(scores, 5, pool_factor=1)
    assert set(plain) == {top, *copies}
    diverse = select_batch(scores, 5, embeddings=x, pool_factor=3)
    assert diverse[0] == top
    assert len(set(diverse) & {top, *copies}) == 1


def test_bad_k_and_empty_pool():
    with pytest.raises(InputError, match="pool is empty"):
        select_batch(np.array([]), 1)
    with pytest.raises(InputError, match="between 1 and the pool size \\(3\\)"):
        select_batch(np.array([0.1, 0.2, 0.3]), 4)
    assert sorted(random_batch(10, 10, seed=1)) == list(range(10))
