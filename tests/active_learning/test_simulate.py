"""The simulation's figures by hand, its cold starts on planted clusters, and a tiny run end to end
(a tiny random encoder as the student's base, so it is quick)."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from active_learning.simulate import (Point, SimConfig, first_reaching, initial_labels, load_split, mean_se,
                                      normalized_auc, parse_strategy, simulate, summarize)
from seedloop.core.errors import ConfigError


def test_normalized_auc_is_the_mean_height():
    labels = np.array([10.0, 20.0, 40.0])
    assert normalized_auc(labels, np.array([0.5, 0.5, 0.5])) == pytest.approx(0.5)
    # trapezoids: (0.2+0.4)/2*10 + (0.4+0.8)/2*20 = 3 + 12 = 15, over a span of 30
    assert normalized_auc(labels, np.array([0.2, 0.4, 0.8])) == pytest.approx(0.5)


def test_labels_to_reach_interpolates():
    labels = np.array([10.0, 20.0, 30.0])
    acc = np.array([0.3, 0.5, 0.9])
    assert first_reaching(labels, acc, 0.7) == pytest.approx(25.0)
    assert first_reaching(labels, acc, 0.2) == pytest.approx(10.0)
    assert first_reaching(labels, acc, 0.95) is None


def test_gain_over_random_is_paired_by_seed():
    def run(accs):
        return [Point(r, 10 * (r + 1), a, 0.0) for r, a in enumerate(accs)]
    # random's AUC per seed: 0.5, 0.7; margin's: 0.6, 0.9 -> paired gains 0.1 and 0.2
    results = {"random": [run([0.5, 0.5]), run([0.7, 0.7])], "margin": [run([0.6, 0.6]), run([0.9, 0.9])]}
    summary = summarize(results)
    mean, se = summary.gain["margin"]
    assert mean == pytest.approx(0.15)
    assert se == pytest.approx(np.std([0.1, 0.2], ddof=1) / math.sqrt(2))
    assert summary.gain["random"] == (0.0, 0.0)
    assert summary.target == pytest.approx(0.6)                  # random's final mean accuracy
    assert summary.labels_to_reach["margin"] == pytest.approx(10.0)
    assert mean_se([3.0]) == (3.0, 0.0)


def test_strategy_names():
    s = parse_strategy("kmeans/margin+div")
    assert (s.start, s.score, s.diversity) == ("kmeans", "margin", True)
    s = parse_strategy("random")
    assert (s.start, s.score, s.diversity) == ("random", "random", False)
    for bad in ("margins", "kmeans/margin+diversity", "typical/margin", "disagreement"):
        with pytest.raises(ConfigError, match="unknown strategy"):
            parse_strategy(bad)


def _clusters(k: int, per: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.eye(dim)[:k]                      # orthogonal directions
    x = np.concatenate([c + 0.05 * rng.standard_normal((per, dim)) for c in centers])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("start", ["kmeans", "kcenter"])
def test_cold_start_covers_every_planted_cluster(start):
    x = _clusters(k=5, per=40)
    for seed in (0, 1, 2):
        picked = initial_labels(start, 5, seed, x)
        assert len(set(picked)) == 5
        assert sorted(i // 40 for i in picked) == [0, 1, 2, 3, 4]   # one from each cluster


def test_random_start_is_the_seeded_draw():
    x = _clusters(k=2, per=10)
    assert initial_labels("random", 4, 3, x) == initial_labels("random", 4, 3, x)
    assert initial_labels("random", 4, 3, x) != initial_labels("random", 4, 4, x)


def test_split_is_fixed_and_disjoint():
    cfg = SimConfig(intents=("card_arrival", "exchange_rate"), pool_per_intent=10, test_per_intent=5)
    pool, test = load_split(cfg)
    again, _ = load_split(cfg)
    assert pool["id"].to_list() == again["id"].to_list()
    assert not set(pool["input"]) & set(test["input"])
    assert pool.height == 20 and test.height == 10
    assert set(test["output"]) == {"card_arrival", "exchange_rate"}


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown intent"):
        load_split(SimConfig(intents=("card_arrival", "no_such_intent")))
    with pytest.raises(ConfigError, match="more than the pool"):
        simulate(SimConfig(intents=("card_arrival", "exchange_rate"), pool_per_intent=5, initial=4, batch=4,
                           rounds=2), tmp_path)
    with pytest.raises(ConfigError, match="epoch"):
        simulate(SimConfig(student_settings={"epoch": 2}), tmp_path)
    assert not list(tmp_path.iterdir())                          # refused before anything was written


@pytest.mark.slow
def test_tiny_simulation_runs_and_a_rerun_changes_nothing(tiny_encoder, tmp_path):
    strategies = ("random", "margin+div", "kmeans/margin")
    cfg = SimConfig(intents=("card_arrival", "exchange_rate"), pool_per_intent=6, test_per_intent=3, initial=2,
                    batch=2, rounds=2, seeds=(0, 1), strategies=strategies, base=str(tiny_encoder),
                    student_settings={"epochs": 1})
    summary = simulate(cfg, tmp_path, say=lambda _: None)
    curves = pl.read_csv(tmp_path / "curves.csv")
    assert curves.height == 3 * 2 * 3                         # strategies x seeds x (initial + 2 rounds)
    assert sorted(set(curves["labels"])) == [2, 4, 6]
    starts = {}
    for s in ("random", "margin+div", "kmeans-margin"):
        for seed in (0, 1):
            state = json.loads((tmp_path / f"{s}-seed{seed}" / "state.json").read_text())
            ids = state[-1]["labeled_ids"]
            assert len(ids) == len(set(ids)) == 6             # nothing labeled twice
            starts[s, seed] = state[0]["labeled_ids"]
    assert starts["random", 0] == starts["margin+div", 0]     # paired: the same round-0 labels
    assert starts["random", 0] != starts["random", 1]
    report = json.loads((tmp_path / "summary.json").read_text())
    assert set(report["auc"]) == set(strategies) and 0 <= report["auc"]["margin+div"]["mean"] <= 1
    assert set(report["auc_gain_over_random"]) == set(strategies)
    assert (tmp_path / "curves.png").stat().st_size > 10_000

    head = tmp_path / "margin+div-seed1" / "round-02" / "classifier.json"
    before = head.stat().st_mtime_ns
    again = simulate(cfg, tmp_path, say=lambda _: None)       # everything recorded: nothing is retrained
    assert head.stat().st_mtime_ns == before
    assert np.array_equal(again.curves["margin+div"], summary.curves["margin+div"])
