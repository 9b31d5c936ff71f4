"""Diversity selection: pick K rows that cover the embedding space.

  diversity  k-center greedy (Sener & Savarese 2018): start from the best-ranked row, then repeatedly
             add the row farthest (in cosine distance) from everything picked so far. O(n*K) dot products.
  score      score-then-diversity, as DEITA does: walk rows from the highest judge score down and take a
             row unless it is within `max_similarity` cosine of one already taken; if that leaves fewer
             than K, fill up by k-center greedy over the rest.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from seedloop.core.errors import ConfigError

STRATEGIES = ("diversity", "score")


def k_center_greedy(x: np.ndarray, k: int, *, start: Sequence[int] = (), first: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> list[int]:
    """Indices of k rows: `start` (already chosen) plus greedy farthest-first additions."""
    n = len(x)
    k = min(k, n)
    chosen = list(start)
    if not chosen:
        chosen = [first]
    # max cosine to the chosen set; the farthest row has the smallest such value
    closest = np.max(x @ x[chosen].T, axis=1) if chosen else np.full(n, -np.inf)
    closest[chosen] = np.inf
    while len(chosen) < k:
        nxt = int(np.argmin(closest))
        chosen.append(nxt)
        np.maximum(closest, x @ x[nxt], out=closest)
        closest[nxt] = np.inf
        if progress:
            progress(len(chosen), k)
    return chosen[:k]


def score_then_diversity(x: np.ndarray, scores: Sequence[float | None], k: int, *,
                         max_similarity: float = 0.9) -> list[int]:
    """DEITA's selection: best score first, skipping rows too similar to those already taken."""
    s = np.array([-np.inf if v is None else v for v in scores], dtype=float)
    order = np.lexsort((np.arange(len(s)), -s))        # best score first, earliest first among ties
    chosen: list[int] = []
    closest = np.full(len(x), -np.inf, dtype=np.float32)
    for i in order:
        if len(chosen) == k:
            break
        if closest[i] < max_similarity:
            chosen.append(int(i))
            np.maximum(closest, x @ x[i], out=closest)
    if len(chosen) < k:
        chosen = k_center_greedy(x, k, start=chosen)
    return chosen


def select_diverse(x: np.ndarray, k: int, *, strategy: str = "diversity", scores: Sequence[float | None] | None = None,
           rank: np.ndarray | None = None, max_similarity: float = 0.9,
           progress: Callable[[int, int], None] | None = None) -> list[int]:
    """K row indices by the named strategy; `rank` (keep order) picks k-center's first row."""
    if k < 1:
        raise ConfigError(f"--select must be at least 1, got {k}")
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown selection '{strategy}': expected one of {', '.join(STRATEGIES)}")
    if len(x) <= k:
        return list(range(len(x)))
    if strategy == "score":
        if scores is None:
            raise ConfigError("--select-by score needs judge scores: add --judge TEACHER")
        return score_then_diversity(x, scores, k, max_similarity=max_similarity)
    first = int(np.argmin(rank)) if rank is not None else 0
    return k_center_greedy(x, k, first=first, progress=progress)
