"""A dropped row: which rule dropped it, and for duplicates which row it duplicates and how close."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Drop:
    row: int                      # position in the table the step was given
    reason: str                   # stable string, counted and shown in reports
    dup_of: str | None = None     # id of the kept row (or of the evaluation row) it duplicates
    similarity: float | None = None
    detail: str | None = None     # one line a reviewer can read: the rule's evidence
    dup_row: int | None = None    # position of the kept row in the same table (None for evaluation rows)
