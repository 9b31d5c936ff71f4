"""Read a seed file into raw rows, each tagged with where it came from (line or item number).

Handles JSONL, JSON (a list, or an object holding one list), CSV and Parquet, and a folder written by
`datasets.Dataset.save_to_disk`. Text files must be UTF-8 (a BOM is fine). Not handled: compressed
files, Excel, TSV with other delimiters; a DatasetDict folder (its error names the split folders to
pass instead).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedloop.core.errors import InputError, require_file

FILE_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
LIST_FIELDS = ("messages", "conversations", "instances")  # JSON text in a CSV cell is parsed


@dataclass(frozen=True)
class RawRow:
    data: dict[str, Any]
    where: int | str  # line number for JSONL/CSV, "item N" for JSON, "row N" for Parquet


def file_kind(path: Path) -> str:
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"unknown file type '{path.suffix or '(none)'}': expected one of "
                         f"{', '.join(sorted(FILE_KINDS))}", file=str(path))
    return kind


def read_rows(path: str | Path) -> tuple[str, list[RawRow]]:
    """(file kind, rows). Raises InputError for unreadable files; an empty file is an error too."""
    if Path(path).is_dir():   # first: a folder named seeds.jsonl is a folder, whatever its suffix
        kind, rows = "datasets", read_datasets_folder(Path(path))
    else:
        path = require_file(path)
        kind = file_kind(path)
        rows = _read_parquet(path) if kind == "parquet" else _TEXT_READERS[kind](path, _decode(path))
    if not rows:
        raise InputError(f"the {'dataset' if kind == 'datasets' else 'file'} holds no rows", file=str(path))
    return kind, rows


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); re-save the file as UTF-8",
                         file=str(path), line=line) from exc


def _read_jsonl(path: Path, text: str) -> list[RawRow]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})",
                             file=str(path), line=lineno) from exc
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, found {type(obj).__name__}", file=str(path), line=lineno)
        rows.append(RawRow(obj, lineno))
    return rows


def _read_json(path: Path, text: str) -> list[RawRow]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})", file=str(path),
                         line=exc.lineno) from exc
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise InputError("expected a JSON list of examples, or an object holding exactly one list",
                             file=str(path))
        obj = lists[0]
    if not isinstance(obj, list):
        raise InputError(f"expected a JSON list of examples, found {type(obj).__name__}", file=str(path))
    rows = []
    for i, item in enumerate(obj, 1):
        if not isinstance(item, dict):
            raise InputError(f"expected a JSON object, found {type(item).__name__}", file=str(path),
                             line=f"item {i}")
        rows.append(RawRow(item, f"item {i}"))
    return rows


def _read_csv(path: Path, text: str) -> list[RawRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        for rec in reader:
            if None in rec:  # more cells than header columns
                raise InputError(f"{len(rec) - 1 + len(rec[None])} cells but the header has {len(reader.fieldnames)}",
                                 file=str(path), line=reader.line_num)
            data = {k: v for k, v in rec.items() if v is not None}
            for name in LIST_FIELDS:
                if isinstance(data.get(name), str) and data[name].lstrip().startswith("["):
                    try:
                        data[name] = json.loads(data[name])
                    except json.JSONDecodeError as exc:
                        raise InputError(f"malformed JSON in the cell ({exc.msg})", file=str(path),
                                         line=reader.line_num, field=name) from exc
            rows.append(RawRow(data, reader.line_num))
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", file=str(path), line=reader.line_num) from exc
    return rows


def _read_parquet(path: Path) -> list[RawRow]:
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"cannot read Parquet: {exc}", file=str(path)) from exc
    return [RawRow(d, f"row {i}") for i, d in enumerate(df.to_dicts(), 1)]


def read_datasets_folder(path: Path) -> list[RawRow]:
    """The rows of a `save_to_disk` folder (state.json and dataset_info.json beside Arrow files)."""
    if (path / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in path.iterdir() if (p / "state.json").is_file())
        raise InputError(f"a DatasetDict folder (splits: {', '.join(splits) or 'none'}): pass one split's folder, "
                         f"e.g. {path / (splits[0] if splits else 'train')}", file=str(path))
    if not ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()):
        raise InputError("is a directory, expected a seed file (.jsonl, .json, .csv, .parquet) or a `datasets` "
                         "folder (no state.json and dataset_info.json here, as Dataset.save_to_disk writes)",
                         file=str(path))
    import datasets
    import pyarrow as pa

    if not any(path.glob("*.arrow")):   # an empty Dataset is saved without shards, and load_from_disk fails on it
        return []
    try:
        ds = datasets.load_from_disk(str(path))
        return [RawRow(d, f"row {i}") for i, d in enumerate(ds.to_list(), 1)]
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise InputError(f"cannot read the `datasets` folder: {exc}", file=str(path)) from exc


_TEXT_READERS = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv}
