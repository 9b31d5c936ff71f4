"""What curation reads from a record table: checked texts, one per row.

`--on` chooses the text every step compares: the prompt (instruction + input, the default: two rows
asking the same thing are duplicates whatever they answered), the output, or both.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seedloop.core.errors import ConfigError, InputError

FIELDS = ("prompt", "output", "all")
_MISSING = {"nan", "none", "null"}   # what a float NaN or a Python None becomes when cast to text


def row_text(instruction: str | None, input: str | None, output: str | None, on: str) -> str:
    prompt = (instruction or "").strip()
    if (input or "").strip():
        prompt = f"{prompt}\n\n{input.strip()}"
    if on == "prompt":
        return prompt
    if on == "output":
        return (output or "").strip()
    return f"{prompt}\n\n{(output or '').strip()}"


def _where(path: str | None, row: int) -> int | str:
    """JSONL: the file's line number (blank lines skipped, as the reader does); else 'row N'."""
    if path and str(path).lower().endswith(".jsonl") and Path(path).is_file():
        with open(path, encoding="utf-8") as fh:
            seen = -1
            for lineno, line in enumerate(fh, 1):
                seen += bool(line.strip())
                if seen == row:
                    return lineno
    return f"row {row + 1}"


def _bad(value) -> bool:
    return value is None or not str(value).strip() or str(value).strip().lower() in _MISSING


def checked_texts(df: pl.DataFrame, on: str = "prompt", *, where: str | None = None) -> list[str]:
    """The text of every row, or InputError naming the first row whose needed field is missing."""
    if on not in FIELDS:
        raise ConfigError(f"unknown --on '{on}': expected one of {', '.join(FIELDS)}")
    if df.height == 0:
        raise InputError("the table has no rows: nothing to curate", file=where)
    needed = ["instruction"] if on == "prompt" else ["output"] if on == "output" else ["instruction", "output"]
    for name in needed:
        values = df.get_column(name).to_list()
        for i, v in enumerate(values):
            if _bad(v):
                shown = "missing" if v is None else "blank" if not str(v).strip() else f"'{v}' (a missing value)"
                raise InputError(f"{name} is {shown}: every row needs text here (fix or remove the row)",
                                 file=where, line=_where(where, i), field=name)
    return [row_text(r["instruction"], r["input"], r["output"], on)
            for r in df.select("instruction", "input", "output").iter_rows(named=True)]
