"""Planted duplicates on real text (Banking77): the ground truth for dedup tests and benchmarks.

Each planted row is a copy of an original with a known kind of change, so recall is measured
against a construction, not against the code under test.
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

from tests.conftest import BANKING77

FILLERS = ("please", "really", "just", "now", "actually")
PREFIXES = ("Hi, ", "Hello, ", "Hey, ")
SUFFIXES = (" Thanks.", " Thank you!", " Please help.")
SYNONYMS = {"card": "debit card", "money": "funds", "get": "receive", "want": "would like", "help": "assist",
            "why": "how come", "cancel": "stop", "account": "bank account", "payment": "transaction",
            "transfer": "bank transfer", "received": "gotten", "can": "could", "need": "have to"}


def read_banking77(path: Path = BANKING77) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def surface_variant(text: str, rng: random.Random) -> str:
    """Same text up to case, whitespace and punctuation: exact (normalized) dedup must catch it."""
    kind = rng.choice(("upper", "lower", "spaces", "punct"))
    if kind == "upper":
        return text.upper()
    if kind == "lower":
        return text.lower()
    if kind == "spaces":
        return "  " + re.sub(r" ", "   ", text) + " \t"
    # commas and end marks only: removing an inner mark ("top-up" -> "topup") changes the words
    stripped = re.sub(r"[,.?!]+$", "", text.replace(",", "")).rstrip()
    return stripped + "?!" if stripped == text else stripped


def light_edit(text: str, rng: random.Random) -> str:
    return edit_with_op(text, rng)[0]


def edit_with_op(text: str, rng: random.Random) -> tuple[str, str]:
    """One small edit a paraphrasing teacher often makes: a filler word, a greeting, a synonym,
    one word dropped, two words swapped, or a typo."""
    words = text.split()
    ops = ["filler", "prefix", "suffix", "typo", "swap"]
    if any(w.lower().strip("?.,!") in SYNONYMS for w in words):
        ops.append("synonym")
    if len(words) > 5:
        ops.append("drop")
    op = rng.choice(ops)
    if op == "filler":
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
    elif op == "prefix":
        return rng.choice(PREFIXES) + text[0].lower() + text[1:], op
    elif op == "suffix":
        return text + rng.choice(SUFFIXES), op
    elif op == "synonym":
        i = rng.choice([i for i, w in enumerate(words) if w.lower().strip("?.,!") in SYNONYMS])
        bare = words[i].lower().strip("?.,!")
        words[i] = words[i].lower().replace(bare, SYNONYMS[bare])
    elif op == "drop":
        del words[rng.randrange(1, len(words))]
    elif op == "swap" and len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    else:  # typo: swap two inner letters of a longer word
        long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if long:
            i = rng.choice(long)
            w = words[i]
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        else:
            words.append(rng.choice(FILLERS))
    edited = " ".join(words)
    return (edited, op) if edited != text else (text + " " + rng.choice(FILLERS), "filler")


def planted_set(n_orig: int, n_exact: int, n_surface: int, n_edit: int, seed: int = 0):
    """Originals (distinct Banking77 messages) followed by planted copies, shuffled after the originals.

    Returns rows as dicts: text, category, kind ('original', 'exact', 'surface', 'edit'), op (the
    edit made) and `of` (the index of the original a copy was made from, else None).
    """
    rng = random.Random(seed)
    data = read_banking77()
    seen, originals = set(), []
    for text, cat in rng.sample(data, len(data)):
        key = re.sub(r"[^\w]+", " ", text.lower()).strip()
        if key not in seen:   # Banking77 itself holds a few normalized duplicates
            seen.add(key)
            originals.append((text, cat))
        if len(originals) == n_orig:
            break
    rows = [{"text": t, "category": c, "kind": "original", "op": None, "of": None} for t, c in originals]
    copies = []
    makers = {"exact": lambda t, r: (t, "exact"), "surface": lambda t, r: (surface_variant(t, r), "surface"),
              "edit": edit_with_op}
    for kind, n in (("exact", n_exact), ("surface", n_surface), ("edit", n_edit)):
        for i in rng.sample(range(len(originals)), n):
            text, op = makers[kind](originals[i][0], rng)
            copies.append({"text": text, "category": originals[i][1], "kind": kind, "op": op, "of": i})
    rng.shuffle(copies)
    return rows + copies
