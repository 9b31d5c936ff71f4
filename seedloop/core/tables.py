"""Reading and writing record tables: Parquet (the working format), JSONL, and a `datasets` folder.

A number or a boolean where a record holds text (`"output": 3`) is read as text, as before, but with a
warning naming its line (JSONL) or row (Parquet): it is usually an export that lost its quoting.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from seedloop.core.atomic import atomic_path
from seedloop.core.errors import InputError, require_file, warn_input
from seedloop.core.record import SCHEMA, conform, empty_frame

TABLE_SUFFIXES = (".parquet", ".jsonl")
TEXT_COLUMNS = tuple(name for name, dtype in SCHEMA.items() if dtype == pl.Utf8)
WARN_AT_MOST = 10   # per file: the first few name their lines, the rest are counted


def table_format(path: Path) -> str:
    """'parquet' or 'jsonl' from a table path's suffix; InputError for anything else."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"unknown table format '{suffix or '(none)'}': use .parquet or .jsonl", file=str(path))
    return suffix[1:]


def read_table(path: str | Path) -> pl.DataFrame:
    """A record table with the full schema. Raises InputError for missing files or columns."""
    path = Path(path)
    kind = table_format(path)
    require_file(path)
    try:
        df = pl.read_parquet(path) if kind == "parquet" else _read_jsonl(path)
    except (pl.exceptions.PolarsError, OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read table: {exc}", file=str(path)) from exc
    if kind == "parquet":
        _warn_not_text(_parquet_not_text(df), path)
    if df.width == 0:
        return empty_frame()
    return conform(df, where=str(path))


def _read_jsonl(path: Path) -> pl.DataFrame:
    rows, not_text = [], []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc.msg}", file=str(path), line=lineno) from exc
            if isinstance(rows[-1], dict):
                not_text += [(lineno, name, rows[-1][name]) for name in TEXT_COLUMNS if _is_number(rows[-1].get(name))]
    _warn_not_text(not_text, path)
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None)


def _parquet_not_text(df: pl.DataFrame) -> list[tuple[str, str, object]]:
    """(where, column, value) of values in text columns stored as numbers or booleans."""
    found = []
    for name in TEXT_COLUMNS:
        if name in df.columns and (df[name].dtype.is_numeric() or df[name].dtype == pl.Boolean):
            found += [(f"row {i + 1}", name, v) for i, v in enumerate(df[name].to_list()) if _is_number(v)]
    return found


def _is_number(value) -> bool:
    # NaN is left out: it means "missing", and the stage that needs the text says so
    return isinstance(value, (int, float, bool)) and value == value


def _warn_not_text(found: list[tuple], path: Path) -> None:
    for where, name, value in found[:WARN_AT_MOST]:
        warn_input(f"expected text, found {type(value).__name__} {value!r}; read as text", file=str(path),
                   line=where, field=name)
    if len(found) > WARN_AT_MOST:
        warn_input(f"{len(found) - WARN_AT_MOST} more numbers or booleans where text was expected; read as text",
                   file=str(path))


def write_table(df: pl.DataFrame, path: str | Path) -> Path:
    """Write atomically; the format follows the suffix."""
    path = Path(path)
    kind = table_format(path)
    with atomic_path(path) as tmp:
        if kind == "parquet":
            df.write_parquet(tmp)
        else:
            df.write_ndjson(tmp)
    return path


def export_hf(df: pl.DataFrame, folder: str | Path, *, stage: str = "table", settings: dict | None = None,
              drops: pl.DataFrame | dict[str, int] | None = None, decontamination: list[str] | None = None,
              license: str | None = None, sources: list[str] | None = None) -> Path:
    """Save as a Hugging Face `datasets` folder (load it back with `datasets.load_from_disk`), with its
    dataset card (README.md, seedloop.core.dataset_card): the keywords are what the caller knows of the
    table (the step, its settings, its drops by reason, the evaluation sets, the licence, the input files).
    The card is written inside the folder before it is swapped in, so both appear together or not at all."""
    import datasets

    from seedloop.core.dataset_card import check_license, write_card

    folder = Path(folder)
    license = check_license(license)   # a bad id fails before the rows are saved
    with atomic_path(folder) as tmp:
        datasets.Dataset.from_polars(df).save_to_disk(str(tmp))
        write_card(tmp, df, name=folder.name, stage=stage, data_files="data-*.arrow", settings=settings,
                   drops=drops, decontamination=decontamination, license=license, sources=sources)
    return folder
