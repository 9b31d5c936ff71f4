"""Picking a batch: the most uncertain items, spread out so one batch is not ten paraphrases.

Top-m then k-center greedy (a core-set step over the uncertain shortlist): rank the pool by
uncertainty, keep the m = pool_factor * k most uncertain, start from the single most uncertain one,
then repeatedly add the shortlisted item farthest (cosine) from everything already picked. A
near-copy of a picked item is then the last thing chosen. pool_factor = 1 is plain top-k.
"""

from __future__ import annotations

import numpy as np

from curate import k_center_greedy
from seedloop.core.errors import InputError


def check_k(k: int, pool: int) -> None:
    if pool == 0:
        raise InputError("the pool is empty: nothing to select from", field="pool")
    if not 1 <= k <= pool:
        raise InputError(f"--k must be between 1 and the pool size ({pool}), got {k}", field="k")


def top_uncertain(uncertainty: np.ndarray, m: int) -> np.ndarray:
    """Indices of the m highest scores, highest first; ties keep pool order (so runs repeat)."""
    order = np.lexsort((np.arange(len(uncertainty)), -np.asarray(uncertainty, dtype=float)))
    return order[:m]


def select_batch(uncertainty: np.ndarray, k: int, *, embeddings: np.ndarray | None = None,
                 pool_factor: float = 3.0) -> list[int]:
    """k pool indices, most uncertain first; with `embeddings` (L2-normalized rows), diversified."""
    check_k(k, len(uncertainty))
    shortlist = top_uncertain(uncertainty, max(k, int(round(pool_factor * k))))
    if embeddings is None or len(shortlist) == k:
        return [int(i) for i in shortlist[:k]]
    picked = k_center_greedy(embeddings[shortlist], k, first=0)  # shortlist[0] is the most uncertain
    return [int(shortlist[i]) for i in picked]


def random_batch(pool: int, k: int, seed: int = 0) -> list[int]:
    check_k(k, pool)
    return [int(i) for i in np.random.default_rng(seed).choice(pool, size=k, replace=False)]
