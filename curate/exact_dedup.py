"""Exact dedup: rows whose text is the same up to case, whitespace and punctuation.

The key is `seedloop.core.text.normalized_hash`, the same normalization generation uses, so a row that
differs only by "Hi," vs "hi" or a trailing "?" is the same row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from curate.keep import pick_kept
from seedloop.core.record import Drop
from seedloop.core.text import normalized_hash

REASON = "exact_duplicate"


def exact_duplicates(texts: Sequence[str], ids: Sequence[str], rank: np.ndarray) -> list[Drop]:
    """One Drop per row whose normalized text equals a better-ranked row's."""
    keys = [normalized_hash(t) for t in texts]
    groups = np.unique(np.array(keys, dtype=object), return_inverse=True)[1] if keys else np.zeros(0, int)
    kept = pick_kept(groups.astype(np.int64), rank)
    return [Drop(i, REASON, dup_of=ids[k], similarity=1.0, detail="same text up to case, spacing and punctuation",
                 dup_row=int(k))
            for i, k in enumerate(kept) if k != i]
