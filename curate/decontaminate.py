"""Decontamination: drop rows too close to any row of evaluation/test files (`--against FILE...`).

Three checks, counted separately because they catch different leaks:
  contaminated_ngram      the row shares a word n-gram (default 13 tokens, as GPT-3's decontamination)
                          with an evaluation row, or contains a whole evaluation row shorter than n (of
                          at least MIN_SHORT tokens). Shorter n-grams match instruction boilerplate
                          ("write a reply explaining why a customer ...") and drop rows that copy nothing;
  contaminated_edit       the row is one light edit (typo, word added/dropped/swapped) of an
                          evaluation row, the same rule as near-exact dedup;
  contaminated_embedding  cosine similarity to the nearest evaluation row at or above the threshold.
Tokens are `seedloop.core.text.tokens` (lowercase letters and digits), so case and punctuation never hide a copy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from curate.edit_dedup import edit_pairs
from curate.semantic_dedup import exact_index
from seedloop.core.record import Drop
from seedloop.core.text import tokens

MIN_SHORT = 4


def _ngrams(toks: list[str], n: int):
    return (tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def ngram_matches(texts: Sequence[str], eval_texts: Sequence[str], n: int = 13) -> dict[int, tuple[int, str]]:
    """row -> (evaluation row, the shared n-gram) for rows that share one."""
    table: dict[tuple, int] = {}
    short_lengths: set[int] = set()
    for j, t in enumerate(eval_texts):
        toks = tokens(t)
        if len(toks) >= n:
            for g in _ngrams(toks, n):
                table.setdefault(g, j)
        elif len(toks) >= MIN_SHORT:
            table.setdefault(tuple(toks), j)
            short_lengths.add(len(toks))
    found: dict[int, tuple[int, str]] = {}
    for i, t in enumerate(texts):
        toks = tokens(t)
        for size in (n, *sorted(short_lengths)):
            hit = next((g for g in _ngrams(toks, size) if g in table), None)
            if hit is not None:
                found[i] = (table[hit], " ".join(hit))
                break
    return found


def edit_matches(texts: Sequence[str], eval_texts: Sequence[str]) -> dict[int, int]:
    """row -> evaluation row it is one light edit of."""
    toks = [tokens(t) for t in texts] + [tokens(t) for t in eval_texts]
    n = len(texts)
    found: dict[int, int] = {}
    for a, b in edit_pairs(toks):
        if a < n <= b:       # a row and an evaluation row (pairs come sorted: a < b)
            found.setdefault(a, b - n)
    return found


def nearest_eval(x: np.ndarray, eval_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, evaluation row) of each row's nearest evaluation row."""
    if len(eval_x) == 0 or len(x) == 0:
        return np.full(len(x), -1.0, np.float32), np.full(len(x), -1, np.int64)
    d, i = exact_index(eval_x).search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return d[:, 0], i[:, 0].astype(np.int64)


def contaminated(texts: Sequence[str], x: np.ndarray, eval_texts: Sequence[str], eval_ids: Sequence[str],
                 eval_where: Sequence[str], eval_x: np.ndarray, *, threshold: float, n: int = 13) -> list[Drop]:
    """One Drop per contaminated row; `eval_where` names each evaluation row's file for the detail."""
    sims, nearest = nearest_eval(x, eval_x)
    by_ngram = ngram_matches(texts, eval_texts, n)
    by_edit = edit_matches(texts, eval_texts)
    drops = []
    for i in range(len(texts)):
        if i in by_ngram:
            j, gram = by_ngram[i]
            reason, detail = "contaminated_ngram", f"shares '{gram}' with {eval_where[j]}"
        elif i in by_edit:
            j = by_edit[i]
            reason, detail = "contaminated_edit", f"one edit from {eval_where[j]}"
        elif sims[i] >= threshold - 1e-6:
            j = int(nearest[i])
            reason, detail = "contaminated_embedding", f"cosine {sims[i]:.3f} to {eval_where[j]}"
        else:
            continue
        sim = float(x[i] @ eval_x[j])
        drops.append(Drop(i, reason, dup_of=eval_ids[j], similarity=round(sim, 4), detail=detail))
    return drops
