"""Data that ships inside seedloop, so tests, `seedloop simulate` and the benchmarks need no download.

- Banking77's training split (PolyAI, CC BY 4.0; see banking77/LICENSE.md): 10,003 messages, 77 intents.
"""

from __future__ import annotations

from pathlib import Path

BANKING77 = Path(__file__).resolve().parent / "banking77" / "train.csv"


def banking77_rows() -> list[tuple[str, str]]:
    """(text, intent) for every Banking77 training message, in file order."""
    import polars as pl

    frame = pl.read_csv(BANKING77)
    return list(zip(frame["text"].to_list(), frame["category"].to_list()))
