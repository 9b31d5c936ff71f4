"""The simulation's figures by hand, and a tiny run end to end (a tiny random base, so it is quick)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from active_learning.simulate import SimConfig, first_reaching, load_split, normalized_auc, simulate
from seedloop.errors import ConfigError


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


def test_split_is_fixed_and_disjoint():
    cfg = SimConfig(intents=("card_arrival", "exchange_rate"), pool_per_intent=10, test_per_intent=5)
    pool, test = load_split(cfg)
    again, _ = load_split(cfg)
    assert pool["id"].to_list() == again["id"].to_list()
    assert not set(pool["id"]) & set(test["id"])
    assert pool.height == 20 and test.height == 10
    assert set(test["output"]) == {"card_arrival", "exchange_rate"}


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown intent"):
        load_split(SimConfig(intents=("card_arrival", "no_such_intent")))
    with pytest.raises(ConfigError, match="more than the pool"):
        simulate(SimConfig(intents=("card_arrival", "exchange_rate"), pool_per_intent=5, initial=4, batch=4,
                           rounds=2), tmp_path)


@pytest.mark.slow
def test_tiny_simulation_runs_and_a_rerun_changes_nothing(tiny_base, tmp_path):
    cfg = SimConfig(intents=("card_arrival", "exchange_rate"), pool_per_intent=6, test_per_intent=3, initial=2,
                    batch=2, rounds=2, seeds=(0, 1), base=str(tiny_base), first_steps=1, steps=1)
    summary = simulate(cfg, tmp_path, say=lambda _: None)
    curves = pl.read_csv(tmp_path / "curves.csv")
    assert curves.height == 2 * 2 * 3                         # strategies x seeds x (initial + 2 rounds)
    assert sorted(set(curves["labels"])) == [2, 4, 6]
    for s in ("random", "margin"):
        for seed in (0, 1):
            state = json.loads((tmp_path / f"{s}-seed{seed}" / "state.json").read_text())
            ids = state[-1]["labeled_ids"]
            assert len(ids) == len(set(ids)) == 6             # nothing labeled twice
    report = json.loads((tmp_path / "summary.json").read_text())
    assert set(report["auc"]) == {"random", "margin"} and 0 <= report["auc"]["margin"]["mean"] <= 1
    assert (tmp_path / "curves.png").stat().st_size > 10_000

    adapter = tmp_path / "margin-seed1" / "round-02" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    again = simulate(cfg, tmp_path, say=lambda _: None)       # everything recorded: nothing is retrained
    assert adapter.stat().st_mtime_ns == before
    assert np.array_equal(again.curves["margin"], summary.curves["margin"])
