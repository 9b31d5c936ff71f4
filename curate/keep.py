"""Which row of a duplicate group survives: the keep policy, as a rank (lower = kept first).

  seed-first   seed rows, then the earliest row in the table (the default)
  score        the highest judge score, then seed rows, then the earliest; unscored rows rank last
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from seedloop.core.errors import ConfigError

POLICIES = ("seed-first", "score")


def keep_rank(sources: Sequence[str | None], scores: Sequence[float | None] | None = None,
              policy: str = "seed-first") -> np.ndarray:
    """rank[i] = position of row i in keep order; the best row of any group has the smallest rank."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown keep policy '{policy}': expected one of {', '.join(POLICIES)}")
    n = len(sources)
    order = np.arange(n)
    not_seed = np.array([s != "seed" for s in sources], dtype=bool)
    keys = [order, not_seed]   # np.lexsort sorts by the last key first
    if policy == "score":
        if scores is None:
            raise ConfigError("--keep score needs judge scores: add --judge TEACHER")
        s = np.array([np.nan if v is None else v for v in scores], dtype=float)
        keys.append(np.where(np.isnan(s), np.inf, -s))
    ranked = np.lexsort(keys)
    rank = np.empty(n, dtype=np.int64)
    rank[ranked] = np.arange(n)
    return rank


def pick_kept(groups: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For a group label per row, the row kept in each row's group (kept[i] == i for survivors)."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    by = np.lexsort((rank, groups))          # rows sorted by group, best first within a group
    first = np.ones(n, dtype=bool)
    first[1:] = groups[by][1:] != groups[by][:-1]
    leader_pos = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    kept = np.empty(n, dtype=np.int64)
    kept[by] = by[leader_pos]
    return kept


def group_labels(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Connected components of the undirected graph with these edges: a group label per row."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    adj = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    return connected_components(adj, directed=False)[1].astype(np.int64)
