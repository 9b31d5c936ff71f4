"""curate: a noisy generated set in, a clean one out, with the reason for every row dropped.

Steps, one module each: exact_dedup, edit_dedup (near-exact), decontaminate, semantic_dedup,
judge, diversity (k-center selection); embed holds the cached embedder; pipeline chains them;
report writes the HTML; files runs it all from a table file to the output files, for `seedloop
curate` (seedloop/cli/curate.py). curate/review is the Label Studio step.

The public surface other stages use (names load lazily, so `import curate.review` stays light):

    curate_table(df, embedder, ...) -> CurateResult     every step in order, drops counted by reason
    curate_file(path, out, ...) -> CurateResult         the same from a table file; writes the outputs
    Embedder(model=None, cache=..., encode=None)        sentence embeddings through a SQLite cache;
                                                        `encode=` lets an executor compute the misses
    k_center_greedy(x, k, start=(), first=0) -> [row]   the most spread-out rows of an embedding matrix
    checked_texts(df, on="prompt", where=None) -> [str] the text of each row a step embeds, checked
    row_text(instruction, input, output, on) -> str
    build_pairs(df, min_gap=None) -> (pairs, counts)    preference pairs from edits, rejections, the judge
    read_pairs(path) -> pairs; trl_rows(pairs) -> rows  a pairs table (ours or TRL's JSONL); TRL's format
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "curate_table": "curate.pipeline", "CurateResult": "curate.pipeline", "Against": "curate.pipeline",
    "curate_file": "curate.files",
    "Embedder": "curate.embed", "k_center_greedy": "curate.diversity",
    "checked_texts": "curate.rows", "row_text": "curate.rows",
    "build_pairs": "curate.pairs", "read_pairs": "curate.pairs", "trl_rows": "curate.pairs",
    "PAIR_SCHEMA": "curate.pairs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
