"""Keep policy and diversity selection, on small hand-made inputs with known answers."""

import numpy as np
import pytest

from curate.keep import keep_rank, pick_kept
from curate.diversity import k_center_greedy, score_then_diversity, select_diverse
from seedloop.core.errors import ConfigError


def test_seed_first_then_earliest():
    rank = keep_rank(["generated", "seed", "generated", "seed"])
    assert list(np.argsort(rank)) == [1, 3, 0, 2]


def test_score_policy_prefers_the_highest_score_and_puts_unscored_last():
    rank = keep_rank(["generated", "seed", "generated", "generated"], [3.0, 2.0, 5.0, None], "score")
    assert list(np.argsort(rank)) == [2, 0, 1, 3]


def test_score_policy_without_scores_says_what_to_add():
    with pytest.raises(ConfigError, match="--judge"):
        keep_rank(["generated"], None, "score")


def test_pick_kept_one_survivor_per_group():
    groups = np.array([0, 1, 0, 1, 2])
    rank = np.array([4, 3, 1, 0, 2])
    assert list(pick_kept(groups, rank)) == [2, 3, 2, 3, 4]


def _clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3]
    x = np.concatenate([c + 0.05 * rng.standard_normal((20, 8)) for c in centres])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_k_center_greedy_covers_every_cluster_first():
    x = _clusters()
    picked = k_center_greedy(x, 3)
    assert sorted(i // 20 for i in picked) == [0, 1, 2]


def test_score_then_diversity_takes_the_best_of_each_cluster():
    x = _clusters()
    scores = [float(i % 20 == 7) + (i // 20) for i in range(60)]   # row 7 of each cluster is its best
    picked = score_then_diversity(x, scores, 3, max_similarity=0.9)
    assert sorted(picked) == [47, 27, 7][::-1]


def test_select_validates_its_arguments():
    with pytest.raises(ConfigError):
        select_diverse(_clusters(), 0)
    with pytest.raises(ConfigError, match="--judge"):
        select_diverse(_clusters(), 2, strategy="score")
    assert select_diverse(_clusters()[:2], 5) == [0, 1]
