"""Semantic dedup: a nearest-neighbour graph over the embeddings, cut at a cosine threshold.

Each row's K nearest neighbours come from faiss: an exact search of every row against every row up
to EXACT_MAX_ROWS rows, an IVF partition above: spherical k-means lists, each row in its PROBE
nearest lists, and an exact search inside each list. Why not IndexIVFFlat.search: it scans lists one
query at a time, while a list searched against itself is one BLAS product. Measured on 2 shared
cores (benchmarks/curate_graph.py): 100,000 random vectors in 13 s here vs 22 s for IndexIVFFlat at
nprobe 4, the setting that matches this graph's recall on Banking77 (edges at cosine >= 0.8:
0.9964 here, 0.9981 at nprobe 4, 0.9875 at nprobe 2, which takes 14 s).
Edges at cosine >= threshold join rows; connected components are duplicate groups; the keep policy
picks one row per group. Neighbours are searched once down to the curve's lowest threshold, so the
"fraction removed vs threshold" curve comes from the same graph without re-running.

K bounds memory (n*K edges at most); a group larger than K is still joined through chains.
Chaining is also the known weakness of components (A~B~C joins A and C even when they are far
apart), so each dropped row records its similarity to the row actually kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from curate.keep import group_labels, pick_kept
from seedloop.core.errors import ConfigError
from seedloop.core.record import Drop

REASON = "semantic_duplicate"
# Measured (benchmarks/curate_graph.py crossover, 2 shared cores, 384 dims): exact vs IVF graph took
# 3.6 s vs 1.5 s at 10,000 rows, 16 s vs 2.2 s at 20,000, 79 s vs 1.6 s at 50,000. Exact while it
# costs a few seconds; above, IVF, whose edges at cosine >= 0.9 on Banking77 have recall 0.9996.
EXACT_MAX_ROWS = 10_000
CURVE = tuple(np.round(np.arange(0.80, 0.995, 0.01), 2))
QUERY_CHUNK = 8192
PROBE = 2                 # lists each row joins in the IVF partition


@dataclass
class NeighbourGraph:
    n: int
    src: np.ndarray          # edges i -> j with similarity >= the lowest threshold searched
    dst: np.ndarray
    sim: np.ndarray
    nearest: np.ndarray      # each row's similarity to its nearest other row (nan when alone)
    nearest_row: np.ndarray  # and which row that is (-1 when alone)
    index: str               # "flat" or "ivf<lists>,probe<p>"


def check_threshold(value: float, option: str = "--threshold") -> float:
    if value is None or not 0 < value <= 1:
        raise ConfigError(f"{option} must be in (0, 1], got {value}")
    return float(value)


def exact_index(x: np.ndarray):
    """An exact faiss inner-product index holding x (decontamination searches evaluation rows in it)."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(np.ascontiguousarray(x, dtype=np.float32))
    return index


def _knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest by inner product: faiss's blocked BLAS search (the IndexFlatIP code path)."""
    import faiss

    return faiss.knn(xq, xb, min(k, len(xb)), metric=faiss.METRIC_INNER_PRODUCT)


def _lists(x: np.ndarray, probe: int, seed: int) -> tuple[list[np.ndarray], str]:
    """IVF's inverted lists by spherical k-means (sqrt(n) lists); each row joins its `probe` nearest,
    so a pair split by a list border still meets in one list."""
    import faiss

    n, d = x.shape
    nlist = max(1, int(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    # 40 points per centroid and 10 iterations: enough for a partition; more only costs time
    sample = x[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
    km = faiss.Kmeans(d, nlist, niter=10, seed=seed, spherical=True, min_points_per_centroid=1)
    km.train(sample)
    _, assign = _knn(x, km.centroids, probe)
    members = np.argsort(assign.ravel(), kind="stable") // assign.shape[1]
    bounds = np.searchsorted(np.sort(assign.ravel()), np.arange(nlist + 1))
    return [members[bounds[c]:bounds[c + 1]] for c in range(nlist)], f"ivf{nlist},probe{probe}"


def neighbour_graph(x: np.ndarray, *, min_similarity: float, k: int = 10, index: str = "auto", probe: int = PROBE,
                    seed: int = 0, progress: Callable[[int, int], None] | None = None) -> NeighbourGraph:
    """K nearest neighbours of every row; keeps the edges at or above `min_similarity`.

    index: flat (exact, every row against every row), ivf (k-means lists, exact search inside each
    list: the candidates IVF would scan, searched with BLAS instead of one query at a time), or auto
    (flat up to EXACT_MAX_ROWS rows).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    graph = NeighbourGraph(n, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32),
                           np.full(n, np.nan, np.float32), np.full(n, -1, np.int64), "none")
    if n < 2:
        return graph
    if index == "auto":
        index = "flat" if n <= EXACT_MAX_ROWS else "ivf"
    if index == "flat":
        lists, graph.index = [np.arange(n)], "flat"
    elif index == "ivf":
        lists, graph.index = _lists(x, probe, seed)
    else:
        raise ConfigError(f"unknown index '{index}': expected auto, flat or ivf")
    parts, done = [], 0
    for rows in lists:
        xb = x if len(rows) == n else x[rows]     # the exact search needs no copy of the vectors
        for start in range(0, len(rows), QUERY_CHUNK):
            q = rows[start:start + QUERY_CHUNK]
            if len(rows) > 1:
                parts.append(_edges(graph, q, rows, *_knn(x[q], xb, k + 1), min_similarity))
            done += len(q)
            if progress:
                progress(done, n * (1 if graph.index == "flat" else probe))
    if parts:
        src, dst, sim = (np.concatenate(p) for p in zip(*parts))
        # a pair found from both ends (or in two lists) is one edge
        key = np.minimum(src, dst) * n + np.maximum(src, dst)
        _, first = np.unique(key, return_index=True)
        graph.src, graph.dst, graph.sim = src[first], dst[first], sim[first]
    return graph


def _edges(graph: NeighbourGraph, q: np.ndarray, rows: np.ndarray, d: np.ndarray, i: np.ndarray,
           min_similarity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn one block's search result into edges, and update each query row's nearest neighbour."""
    found = np.where(i >= 0, rows[np.maximum(i, 0)], -1)
    other = (found != q[:, None]) & (found >= 0)
    d = np.where(other, d, -np.inf)
    best = np.argmax(d, axis=1)
    best_sim = d[np.arange(len(q)), best]
    better = np.isnan(graph.nearest[q]) | (best_sim > graph.nearest[q])
    better &= np.isfinite(best_sim)
    graph.nearest[q[better]] = best_sim[better]
    graph.nearest_row[q[better]] = found[np.arange(len(q)), best][better]
    keep = other & (d >= min_similarity - 1e-6)
    return np.broadcast_to(q[:, None], d.shape)[keep], found[keep], d[keep].astype(np.float32)


def components(graph: NeighbourGraph, threshold: float) -> tuple[int, np.ndarray]:
    """(number of groups, group label per row) using the edges at or above `threshold`."""
    on = graph.sim >= threshold - 1e-6
    labels = group_labels(graph.n, graph.src[on], graph.dst[on])
    return (int(labels.max()) + 1 if graph.n else 0), labels


def removal_curve(graph: NeighbourGraph, thresholds: Sequence[float] = CURVE) -> list[tuple[float, float]]:
    """(threshold, fraction of rows semantic dedup would remove) for each threshold, from one graph."""
    if graph.n == 0:
        return [(float(t), 0.0) for t in thresholds]
    return [(float(t), 1 - components(graph, t)[0] / graph.n) for t in thresholds]


def semantic_duplicates(x: np.ndarray, ids: Sequence[str], rank: np.ndarray, graph: NeighbourGraph,
                        threshold: float) -> list[Drop]:
    """One Drop per row in a group whose better-ranked row is kept, with its cosine to that row."""
    _, labels = components(graph, threshold)
    kept = pick_kept(labels, rank)
    drop = np.flatnonzero(kept != np.arange(len(kept)))
    sims = np.einsum("ij,ij->i", x[drop], x[kept[drop]]) if len(drop) else np.zeros(0)
    return [Drop(int(i), REASON, dup_of=ids[kept[i]], similarity=round(float(s), 4),
                 detail=f"cosine {s:.3f} to the kept row" + ("" if s >= threshold - 1e-6 else
                                                             f" (joined through a chain at >= {threshold})"),
                 dup_row=int(kept[i]))
            for i, s in zip(drop, sims)]
