"""The record: one row per example, the same columns in every stage.

Stages exchange polars DataFrames with exactly these columns. `conform` turns any table that has
at least the required columns into one with the full schema, so a stage never has to guess.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

import polars as pl

from seedloop.core.errors import InputError

SOURCES = ("seed", "generated", "human", "pool")
STATUSES = ("pending", "accepted", "rejected", "edited")

MESSAGE = pl.Struct({"role": pl.Utf8, "content": pl.Utf8})
SCORES = pl.Struct({
    "judge_score": pl.Float64,    # 1-5 from the LLM judge
    "judge_reason": pl.Utf8,
    "dup_of": pl.Utf8,            # id of the row this one duplicates
    "similarity": pl.Float64,     # similarity to dup_of (or to the nearest eval row)
    "uncertainty": pl.Float64,    # active-learning score, higher = less sure
    "strategy": pl.Utf8,          # which uncertainty strategy produced it
})
REVIEW = pl.Struct({
    "annotator": pl.Utf8,
    "reviewed_at": pl.Utf8,       # ISO 8601
    "original_output": pl.Utf8,   # the output before a human edited it
    "agreement": pl.Float64,      # fraction of annotators who agreed with the verdict
    "rating": pl.Int32,
    "comment": pl.Utf8,
})
SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Utf8,
    "instruction": pl.Utf8,
    "input": pl.Utf8,
    "output": pl.Utf8,
    "messages": pl.List(MESSAGE),
    "source": pl.Utf8,
    "parents": pl.List(pl.Utf8),
    "teacher": pl.Utf8,
    "prompt": pl.Utf8,
    "round": pl.Int32,
    "status": pl.Utf8,
    "scores": SCORES,
    "review": REVIEW,
}
REQUIRED = ("instruction",)


# A dropped row keeps the record columns and says why: the one drop table every stage writes
# (`generate --drops`, `curate --drops`, the loop's curate_drops.parquet).
DROP_COLUMNS: dict[str, pl.DataType] = {
    "reason": pl.Utf8,   # stable string, counted and shown in reports (e.g. near_duplicate, refusal)
    "stage": pl.Utf8,    # where: generation's instruction / instance / evolution / response, or a curate step
    "detail": pl.Utf8,   # one line a reviewer can read: the rule's evidence
}
DROP_SCHEMA: dict[str, pl.DataType] = {**SCHEMA, **DROP_COLUMNS}


@dataclass(frozen=True)
class Drop:
    """A row a step dropped: its position in the table the step was given, and why."""
    row: int
    reason: str
    dup_of: str | None = None     # id of the kept row (or of the evaluation row) it duplicates
    similarity: float | None = None
    detail: str | None = None
    dup_row: int | None = None    # position of the kept row in the same table (None for evaluation rows)


def drop_table(rows: Iterable[dict]) -> pl.DataFrame:
    """Dropped rows (record keys, missing ones allowed, plus reason, stage and detail) as a drop table."""
    return pl.DataFrame([{name: r.get(name) for name in DROP_SCHEMA} for r in rows], schema=DROP_SCHEMA)


def make_id(instruction: str, input: str = "", messages: list[dict] | None = None) -> str:
    """Stable content hash of what the model is asked: instruction + input.

    Multi-turn chats hash every turn before the last answer too, so two conversations that
    end with the same question are still different examples.
    """
    h = hashlib.sha256()
    h.update((instruction or "").strip().encode())
    h.update(b"\x1f")
    h.update((input or "").strip().encode())
    if messages and len(messages) > 2:
        context = [m for m in messages[:-1]]
        h.update(b"\x1f" + json.dumps(context, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def new_record(instruction: str, input: str = "", output: str | None = None, *,
               source: str = "generated", messages: list[dict] | None = None, **fields: Any) -> dict:
    """A record dict with every column present and an id derived from its content."""
    rec = {name: None for name in SCHEMA}
    rec.update(instruction=instruction, input=input or "", output=output, messages=messages,
               source=source, parents=[], round=0, status="pending")
    rec.update(fields)
    rec["id"] = make_id(instruction, input or "", messages)
    return rec


def to_frame(records: Iterable[dict]) -> pl.DataFrame:
    """Records (dicts, missing keys allowed) to a DataFrame with the full schema."""
    rows = [{name: r.get(name) for name in SCHEMA} for r in records]
    return pl.DataFrame(rows, schema=SCHEMA)


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def conform(df: pl.DataFrame, *, where: str = "table") -> pl.DataFrame:
    """Add missing optional columns, cast known ones, keep extra columns at the end.

    Raises InputError naming the missing column when a required one is absent.
    """
    for col in REQUIRED:
        if col not in df.columns:
            raise InputError(f"missing required column '{col}' (found: {', '.join(df.columns) or 'none'})",
                             file=where, field=col)
    exprs = []
    for name, dtype in SCHEMA.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype, strict=False))
        elif name == "id":
            continue
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    out = df.with_columns(exprs)
    if "id" not in df.columns:
        out = out.with_columns(pl.struct("instruction", "input", "messages").map_elements(
            lambda s: make_id(s["instruction"] or "", s["input"] or "", s["messages"]),
            return_dtype=pl.Utf8).alias("id"))
    extra = [c for c in out.columns if c not in SCHEMA]
    return out.select([*SCHEMA, *extra])


def _text(value) -> str:
    return "" if value is None else str(value)


def record_messages(record: dict, *, with_output: bool = True) -> list[dict]:
    """The conversation of a record; the final assistant turn is its `output` when it has one."""
    messages = record.get("messages")
    if messages:
        out = [{"role": m["role"], "content": _text(m["content"])} for m in messages]
        if with_output and record.get("output") is not None and out[-1]["role"] != "assistant":
            out.append({"role": "assistant", "content": _text(record["output"])})
        if not with_output and out[-1]["role"] == "assistant":
            out = out[:-1]
        return out
    user = _text(record.get("instruction")).strip()
    extra = _text(record.get("input")).strip()
    out = [{"role": "user", "content": f"{user}\n\n{extra}" if extra else user}]
    if with_output and record.get("output") is not None:
        out.append({"role": "assistant", "content": _text(record["output"])})
    return out
