"""Seed ingestion: any supported file and format in, records out.

Formats (auto-detected from the fields of the rows, or forced with `fmt`):
  alpaca             instruction, input (optional), output (optional)
  self_instruct      instruction, instances: [{input, output}, ...]  -> one record per instance
  chat               messages: [{role, content}, ...] (OpenAI)
  sharegpt           conversations: [{from, value}, ...]
  prompt_completion  prompt, completion

`inspect_seeds` collects every problem; `load_seeds` refuses a file with any problem, naming the
first few by line and field, so nothing half-read ever reaches a generator. Text that is read but
suspicious (a field over MAX_FIELD_CHARS characters: a pasted document, a runaway export) is a
warning naming its line and field: it is kept, but every teacher prompt that shows it pays for it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import polars as pl

from seedloop.core.errors import InputError, warn_input
from seedloop.core.record import new_record, to_frame
from synth.readers import RawRow, read_rows

# format -> the fields whose presence identifies it (checked in this order)
SIGNATURES: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "sharegpt": ("conversations",),
    "self_instruct": ("instruction", "instances"),
    "prompt_completion": ("prompt", "completion"),
    "alpaca": ("instruction",),
}
FORMATS = tuple(SIGNATURES)
MAX_FIELD_CHARS = 20_000   # about 5,000 tokens; real instructions and answers are far shorter
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system"}


@dataclass
class Problem:
    where: int | str
    field: str | None
    message: str

    def error(self, path: str) -> InputError:
        return InputError(self.message, file=path, line=self.where, field=self.field)


@dataclass
class SeedReport:
    path: str
    file_kind: str
    format: str
    rows: int
    fields: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    duplicates: int = 0
    without_output: int = 0

    def warn(self, at_most: int = 10) -> None:
        """The first warnings as InputWarnings (the CLI prints one line each on stderr), the rest counted."""
        for w in self.warnings[:at_most]:
            warn_input(w.message, file=self.path, line=w.where, field=w.field)
        if len(self.warnings) > at_most:
            warn_input(f"{len(self.warnings) - at_most} more fields over {MAX_FIELD_CHARS:,} characters",
                       file=self.path)


def detect_format(rows: list[RawRow], path: str) -> str:
    counts = Counter(_row_format(r.data) for r in rows)
    counts.pop(None, None)
    if not counts:
        found = sorted({k for r in rows[:50] for k in r.data})
        expected = "; ".join(f"{name} ({', '.join(sig)})" for name, sig in SIGNATURES.items())
        raise InputError(f"cannot tell the seed format from the fields {found}; expected one of: {expected}. "
                         "Rename the columns or pass --format", file=path)
    return counts.most_common(1)[0][0]


def _row_format(data: dict) -> str | None:
    for name, sig in SIGNATURES.items():
        if all(data.get(k) not in (None, "") for k in sig):
            return name
    return None


def inspect_seeds(path: str | Path, fmt: str | None = None) -> SeedReport:
    """Read and convert every row, collecting problems instead of stopping at the first."""
    path = str(path)
    kind, rows = read_rows(path)
    if fmt is not None and fmt not in SIGNATURES:
        raise InputError(f"unknown format '{fmt}': expected one of {', '.join(FORMATS)}")
    fmt = fmt or detect_format(rows, path)
    report = SeedReport(path=path, file_kind=kind, format=fmt, rows=len(rows))
    seen: set[str] = set()
    for row in rows:
        report.fields.update(row.data.keys())
        report.warnings += [Problem(row.where, name, _too_long(n)) for name, n in _long_fields(row.data)]
        try:
            records = _CONVERTERS[fmt](row.data)
        except _RowProblem as exc:
            report.problems.append(Problem(row.where, exc.field, exc.message))
            continue
        for rec in records:
            if rec["id"] in seen:
                report.duplicates += 1
                continue
            seen.add(rec["id"])
            report.without_output += rec["output"] is None
            report.records.append(rec)
    return report


def load_seeds(path: str | Path, fmt: str | None = None) -> pl.DataFrame:
    """Seed records (source='seed', status='accepted'), or InputError naming the first bad row."""
    report = inspect_seeds(path, fmt)
    report.warn()
    if report.problems:
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more problems; run `seedloop seeds inspect {path}`)" \
            if len(report.problems) > 1 else ""
        err = first.error(str(path))
        raise InputError(f"{err}{more}")
    return to_frame(report.records)


def _long_fields(data: dict, prefix: str = ""):
    """(field, length) of each text longer than MAX_FIELD_CHARS, nested turns included ('messages[2].content')."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            yield name, len(value)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _long_fields(item, f"{name}[{i}].")


def _too_long(n: int) -> str:
    return (f"{n:,} characters (more than {MAX_FIELD_CHARS:,}): kept, but every teacher prompt that shows "
            "this seed carries all of it; is it a whole document pasted in?")


class _RowProblem(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


def _text(data: dict, name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        value = None
    elif not isinstance(value, str):
        raise _RowProblem(f"expected text, found {type(value).__name__}", name)
    if required and not (value or "").strip():
        raise _RowProblem("missing or empty", name)
    return value.strip() if value is not None else None


def _seed(instruction: str, input: str | None, output: str | None, messages=None) -> dict:
    return new_record(instruction, input or "", output or None, source="seed", status="accepted",
                      messages=messages)


def _alpaca(data: dict) -> list[dict]:
    return [_seed(_text(data, "instruction", required=True), _text(data, "input", required=False),
                  _text(data, "output", required=False))]


def _self_instruct(data: dict) -> list[dict]:
    instruction = _text(data, "instruction", required=True)
    instances = data.get("instances")
    if not isinstance(instances, list):
        raise _RowProblem(f"expected a list of {{input, output}}, found {type(instances).__name__}", "instances")
    out = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise _RowProblem(f"instance {i} is not an object", "instances")
        try:
            out.append(_seed(instruction, _text(inst, "input", required=False), _text(inst, "output", required=True)))
        except _RowProblem as exc:
            raise _RowProblem(f"instance {i}: {exc.message}", f"instances[{i}].{exc.field}") from None
    return out or [_seed(instruction, None, None)]


def _chat(data: dict, key: str = "messages", role_key: str = "role", text_key: str = "content",
          roles: dict[str, str] | None = None) -> list[dict]:
    turns = data.get(key)
    if not isinstance(turns, list) or not turns:
        raise _RowProblem("expected a non-empty list of turns", key)
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _RowProblem(f"turn {i} is not an object", key)
        role, content = turn.get(role_key), turn.get(text_key)
        role = roles.get(str(role).lower()) if roles else role
        if role not in ("system", "user", "assistant"):
            raise _RowProblem(f"turn {i}: unknown role {turn.get(role_key)!r}", f"{key}[{i}].{role_key}")
        if not isinstance(content, str):
            raise _RowProblem(f"turn {i}: expected text, found {type(content).__name__}", f"{key}[{i}].{text_key}")
        messages.append({"role": role, "content": content})
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        raise _RowProblem("no user turn", key)
    answer = messages[-1]["content"] if messages[-1]["role"] == "assistant" else None
    last_user = users[-1]["content"].strip()
    return [_seed(last_user, "", answer, messages=messages)]


def _sharegpt(data: dict) -> list[dict]:
    return _chat(data, "conversations", "from", "value", SHAREGPT_ROLES)


def _prompt_completion(data: dict) -> list[dict]:
    return [_seed(_text(data, "prompt", required=True), None, _text(data, "completion", required=True))]


_CONVERTERS: dict[str, Callable[[dict[str, Any]], list[dict]]] = {
    "alpaca": _alpaca, "self_instruct": _self_instruct, "chat": _chat,
    "sharegpt": _sharegpt, "prompt_completion": _prompt_completion,
}
