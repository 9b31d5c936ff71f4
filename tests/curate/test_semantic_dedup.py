"""Semantic dedup's graph, components and curve against a brute-force reference (all pairs + union-find)."""

import numpy as np
import pytest

from curate.keep import keep_rank
from curate.semantic_dedup import CURVE, check_threshold, neighbour_graph, removal_curve, semantic_duplicates
from seedloop.core.errors import ConfigError


def _reference_groups(x, threshold):
    """All pairs, plain union-find: the definition the faiss graph must reproduce."""
    n = len(x)
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    sims = x @ x.T
    for i in range(n):
        for j in range(i + 1, n):
            if sims[i, j] >= threshold:
                parent[find(i)] = find(j)
    return len({find(i) for i in range(n)})


def _planted(n_groups=60, per=4, d=32, spread=0.12, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, d))
    x = np.repeat(centres, per, axis=0) + spread * rng.standard_normal((n_groups * per, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_curve_matches_brute_force_at_every_threshold():
    x = _planted()
    graph = neighbour_graph(x, min_similarity=0.8, k=10, index="flat")
    for t, frac in removal_curve(graph):
        assert frac == pytest.approx(1 - _reference_groups(x, t) / len(x)), t


def test_ivf_finds_the_same_groups_as_the_exact_index():
    x = _planted(n_groups=400, per=3, d=64, spread=0.08, seed=1)
    exact = removal_curve(neighbour_graph(x, min_similarity=0.8, index="flat"))
    approx = removal_curve(neighbour_graph(x, min_similarity=0.8, index="ivf"))
    assert [round(f, 4) for _, f in approx] == [round(f, 4) for _, f in exact]


def test_dropped_rows_name_the_kept_row_and_their_similarity():
    x = _planted(n_groups=3, per=3, spread=0.05)
    ids = [f"r{i}" for i in range(len(x))]
    rank = keep_rank(["generated", "generated", "seed"] * 3)
    drops = semantic_duplicates(x, ids, rank, neighbour_graph(x, min_similarity=0.8), 0.9)
    assert sorted(d.row for d in drops) == [0, 1, 3, 4, 6, 7]
    for d in drops:
        assert d.dup_of == f"r{d.row // 3 * 3 + 2}"               # the seed row of its group
        assert d.similarity == pytest.approx(float(x[d.row] @ x[d.row // 3 * 3 + 2]), abs=1e-4)


def test_auto_index_is_exact_up_to_the_measured_size(monkeypatch):
    x = _planted(n_groups=100, per=2)
    assert neighbour_graph(x, min_similarity=0.8).index == "flat"
    monkeypatch.setattr("curate.semantic_dedup.EXACT_MAX_ROWS", 199)
    assert neighbour_graph(x, min_similarity=0.8).index == "ivf14,probe2"


def test_curve_covers_080_to_099():
    assert CURVE[0] == 0.8 and CURVE[-1] == 0.99 and len(CURVE) == 20


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, None])
def test_threshold_outside_0_1_is_refused(bad):
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        check_threshold(bad)


def test_single_row_has_no_neighbours():
    g = neighbour_graph(_planted(n_groups=1, per=1), min_similarity=0.8)
    assert g.n == 1 and len(g.src) == 0 and np.isnan(g.nearest[0])
