"""Online near-duplicate rejection: is a new text within ROUGE-L `threshold` of anything kept so far?

Exact (the same decisions as comparing against every kept text) but it never rescans the pool:
prefix filtering, as in set-similarity joins. ROUGE-L F1 = 2*LCS/(m+n), and LCS is at most the
multiset overlap o of the two token lists, so a match needs o >= t*(m+n)/2 >= t*m/(2-t) =: alpha.
Two lists that share alpha elements must share one among the first len-alpha+1 of each, when both
are sorted in one global order. So each text is indexed under its prefix only, a query probes its
prefix only, and exact LCS runs on the few candidates that survive a length filter and the
multiset-overlap bound.

subtle: the global order must never change once texts are indexed, so it is a fixed function of the
token (rarer-looking tokens first: not a stopword, longer), not of the pool's statistics.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from seedloop.core.text import lcs_length, tokens

_STOP = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been
being it its this that these those you your yours i me my we our they them their he she his her what
which who whom how when where why can could would should will shall may might must do does did not no
so than then there here into about over under up down out please just also any all some each""".split())


def _order(tok: str) -> tuple:
    return (tok in _STOP, -len(tok), tok)


def _elements(toks: list[str]) -> list[tuple[str, int]]:
    """Sorted multiset elements: the k-th occurrence of a token is element (token, k)."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for t in sorted(toks, key=_order):
        out.append((t, seen[t]))
        seen[t] += 1
    return out


class RougeNoveltyIndex:
    """Keeps texts; `nearest(text)` returns (index, score) of the best match at or above threshold."""

    def __init__(self, threshold: float = 0.7):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self._tokens: list[list[str]] = []
        self._postings: dict[tuple[str, int], list[int]] = defaultdict(list)   # prefix elements only
        self._every: dict[tuple[str, int], list[int]] = defaultdict(list)      # every element
        self.visited = 0      # candidates reached through the prefix postings
        self.comparisons = 0  # exact LCS computations, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._tokens)

    def _prefix(self, elems: list) -> list:
        m = len(elems)
        alpha = math.ceil(self.threshold * m / (2 - self.threshold) - 1e-9)
        return elems[: m - max(alpha, 1) + 1]

    def nearest(self, text: str | list[str]) -> tuple[int, float] | None:
        toks = tokens(text) if isinstance(text, str) else text
        m = len(toks)
        if m == 0:
            return None
        t = self.threshold
        lo, hi = m * t / (2 - t), m * (2 - t) / t
        best: tuple[int, float] | None = None
        seen: set[int] = set()
        elems = _elements(toks)
        # the multiset overlap with every kept text at once: shared (token, k) elements counted in C
        # (Counter.update over posting lists), much cheaper than a bag intersection per candidate
        overlaps: Counter = Counter()
        for el in elems:
            overlaps.update(self._every.get(el, ()))
        for el in self._prefix(elems):
            for doc in self._postings.get(el, ()):
                if doc in seen:
                    continue
                seen.add(doc)
                self.visited += 1
                other = self._tokens[doc]
                if not lo - 1e-9 <= len(other) <= hi + 1e-9:
                    continue
                # LCS is at most the multiset overlap: a cheap bound before the quadratic LCS
                if 2 * overlaps[doc] / (m + len(other)) < t - 1e-12:
                    continue
                self.comparisons += 1
                score = 2 * lcs_length(toks, other) / (m + len(other))
                if score >= t - 1e-12 and (best is None or score > best[1]):
                    best = (doc, score)
        return best

    def add(self, text: str | list[str]) -> int:
        toks = tokens(text) if isinstance(text, str) else list(text)
        idx = len(self._tokens)
        self._tokens.append(toks)
        elems = _elements(toks)
        for el in self._prefix(elems):
            self._postings[el].append(idx)
        for el in elems:
            self._every[el].append(idx)
        return idx
