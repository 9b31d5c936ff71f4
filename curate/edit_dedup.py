"""Near-exact dedup: rows one word-level edit apart (a typo, one word added or dropped, two words swapped).

Why a lexical rule next to embeddings: sentence embeddings read a typo in the key word as a different
word ("salary" vs "salray": cosine 0.30 with all-MiniLM-L6-v2), and dropping one word from a short
message moves it far too; both are exactly the copies a paraphrasing teacher or a copy-paste makes.

How (a deletion neighbourhood, as in SymSpell, at the word level): each text is indexed under its
token sequence and under every sequence with one token deleted. Two texts share a key only if
  - one is the other with one token inserted (full key of the shorter == deletion key of the longer),
  - one token differs at the same position (both deletion keys at that position agree), or
  - two adjacent tokens are swapped (deletion keys at neighbouring positions agree).
Linear in the number of tokens; no pairwise scan.

Guards against real differences: texts need MIN_TOKENS tokens (and at most MAX_TOKENS are indexed);
an inserted or dropped token may not be a negation ("not", "never", ...) or a number; a substituted
token must look like a typo of the other (alphabetic, at least 4 letters, Damerau-Levenshtein
distance 1), so "lost my card" vs "lost my phone" stay apart.
Not handled: two or more edits, edits inside numbers.
"""

from __future__ import annotations

from array import array
from typing import Sequence

import numpy as np

from curate.keep import group_labels, pick_kept
from seedloop.core.record import Drop
from seedloop.core.text import tokens

REASON = "near_duplicate"
MIN_TOKENS = 4
MAX_TOKENS = 64      # in longer texts one word barely moves the embedding: semantic dedup finds those
MAX_BUCKET = 200     # a key shared by more rows than this is a template ("how do i X"), not a copy
NEGATIONS = frozenset("not no never nor t cannot cant dont doesnt didnt isnt wasnt won wont without".split())


def _typo(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance 1 (one letter changed, added, dropped, or two swapped)."""
    if not (a.isalpha() and b.isalpha()) or min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _explain(a: list[str], b: list[str]) -> str | None:
    """How b is one light edit of a, or None if the shared key hides a real difference."""
    if len(a) != len(b):
        short, long_ = (a, b) if len(a) < len(b) else (b, a)
        extra = next((long_[i] for i in range(len(long_)) if long_[:i] + long_[i + 1:] == short), None)
        if extra is None or extra in NEGATIONS or extra.isdigit():
            return None
        return f"one word {'added' if len(b) > len(a) else 'dropped'}: '{extra}'"
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) == 1 and _typo(a[diff[0]], b[diff[0]]):
        return f"typo: '{a[diff[0]]}' vs '{b[diff[0]]}'"
    if len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]:
        return f"words swapped: '{a[diff[0]]} {a[diff[1]]}'"
    return None


def _candidates(toks: list[list[str]]) -> set[tuple[int, int]]:
    """Pairs of rows that share a key (their full token sequence, or it with one token deleted).

    Keys are 64-bit hashes, grouped by sorting, so a million rows cost arrays, not dicts of tuples;
    a hash collision only costs one wasted check, since every candidate is verified by `_explain`.
    """
    keys, owners = array("q"), array("q")
    for row, t in enumerate(toks):
        if not MIN_TOKENS <= len(t) <= MAX_TOKENS:
            continue
        full = tuple(t)
        keys.append(hash(full))
        owners.append(row)
        for i in range(len(full)):
            keys.append(hash(full[:i] + full[i + 1:]))
            owners.append(row)
    keys_np, owners_np = np.frombuffer(keys, dtype=np.int64), np.frombuffer(owners, dtype=np.int64)
    order = np.argsort(keys_np, kind="stable")
    k, o = keys_np[order], owners_np[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, len(k)])
    pairs = set()
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        members = sorted(set(o[start:start + size].tolist()))
        if 1 < len(members) <= MAX_BUCKET:
            pairs.update((a, b) for i, a in enumerate(members) for b in members[i + 1:])
    return pairs


def edit_pairs(toks: list[list[str]]) -> list[tuple[int, int]]:
    """Pairs (a, b), a < b, of token lists one light edit apart (or equal)."""
    # same tokens but a different normalized text: they differ only in non-ASCII letters or marks
    return sorted((a, b) for a, b in _candidates(toks) if toks[a] == toks[b] or _explain(toks[a], toks[b]))


def edit_duplicates(texts: Sequence[str], ids: Sequence[str], rank: np.ndarray) -> list[Drop]:
    """One Drop per row that is one light edit from a row in its group, the group's best row kept.

    Groups are connected components of the one-edit relation.
    """
    toks = [tokens(t) for t in texts]
    pairs = np.array(edit_pairs(toks), dtype=np.int64).reshape(-1, 2)
    groups = group_labels(len(toks), pairs[:, 0], pairs[:, 1])
    kept = pick_kept(groups, rank)
    return [Drop(i, REASON, dup_of=ids[k], detail=_describe(toks[i], toks[k]), dup_row=int(k))
            for i, k in enumerate(kept) if k != i]


def _describe(row: list[str], kept: list[str]) -> str:
    if row == kept:
        return "same words"
    return _explain(kept, row) or "one edit from a row that is one edit from the kept row"
