"""Reading and writing record tables: Parquet (the working format), JSONL, and a `datasets` folder."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from seedloop.atomic import atomic_path
from seedloop.errors import InputError
from seedloop.record import conform, empty_frame

TABLE_SUFFIXES = (".parquet", ".jsonl")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"unknown table format '{suffix or '(none)'}': use .parquet or .jsonl", file=str(path))
    return suffix[1:]


def read_table(path: str | Path) -> pl.DataFrame:
    """A record table with the full schema. Raises InputError for missing files or columns."""
    path = Path(path)
    kind = _kind(path)
    if not path.exists():
        raise InputError("file not found", file=str(path))
    try:
        df = pl.read_parquet(path) if kind == "parquet" else _read_jsonl(path)
    except (pl.exceptions.PolarsError, OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read table: {exc}", file=str(path)) from exc
    if df.width == 0:
        return empty_frame()
    return conform(df, where=str(path))


def _read_jsonl(path: Path) -> pl.DataFrame:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc.msg}", file=str(path), line=lineno) from exc
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None)


def write_table(df: pl.DataFrame, path: str | Path) -> Path:
    """Write atomically; the format follows the suffix."""
    path = Path(path)
    kind = _kind(path)
    with atomic_path(path) as tmp:
        if kind == "parquet":
            df.write_parquet(tmp)
        else:
            df.write_ndjson(tmp)
    return path


def export_hf(df: pl.DataFrame, folder: str | Path) -> Path:
    """Save as a Hugging Face `datasets` folder (load it back with `datasets.load_from_disk`)."""
    import datasets

    folder = Path(folder)
    with atomic_path(folder) as tmp:
        datasets.Dataset.from_polars(df).save_to_disk(str(tmp))
    return folder
