"""Preference pairs from review: what a person fixed or threw away, as (prompt, chosen, rejected).

Three origins, each pair with its lineage (the rows its answers came from, the reviewer, the round):
- edit: an edited row; its edit is chosen, `review.original_output` (the answer before the edit) rejected.
- rejection: a rejected row, against every other answer to the same prompt that a reviewer accepted or
  edited. Ids are hashes of the prompt, so "the same prompt" is "the same id"; one Label Studio project
  holds a prompt once, so such pairs come from several reviewed tables (projects, rounds) read together.
- judge (only with `min_gap`): among the judged answers to one prompt that nobody rejected, the best
  against the worst when their judge scores differ by `min_gap` or more.

A pair whose two answers are the same text (after trimming whitespace), or with an empty answer, teaches
nothing and is counted as skipped, as is an edit without its original. The same (prompt, chosen, rejected) is kept once.
Chat records keep their turns: `prompt` is the conversation before the answer.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import chain
from pathlib import Path

import polars as pl

from seedloop.core.errors import InputError, require_file
from seedloop.core.record import MESSAGE, record_messages
from seedloop.core.tables import table_format

ORIGINS = ("edit", "rejection", "judge")
PAIR_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Utf8,               # the prompt's record id
    "prompt": pl.List(MESSAGE),  # the conversation before the answer
    "chosen": pl.Utf8,
    "rejected": pl.Utf8,
    "origin": pl.Utf8,           # edit | rejection | judge
    "chosen_id": pl.Utf8,        # the rows the two answers came from
    "rejected_id": pl.Utf8,
    "reviewer": pl.Utf8,         # who made the call (the editor, the rejecter, or the judge's teacher)
    "round": pl.Int32,
    "gap": pl.Float64,           # judge pairs: the score difference
}


def build_pairs(df: pl.DataFrame, *, min_gap: float | None = None) -> tuple[pl.DataFrame, Counter]:
    """Pairs from a record table (one or more reviewed tables concatenated), and counts: pairs by
    origin, and rows that gave none by reason (skipped_*)."""
    rows = [r for r in df.iter_rows(named=True) if r.get("status") in ("accepted", "edited", "rejected")
            or (min_gap is not None and _score(r) is not None)]
    counts: Counter = Counter()
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_prompt[row["id"]].append(row)
    found = chain(_edit_pairs(rows, counts), _rejection_pairs(by_prompt, counts),
                  _judge_pairs(by_prompt, min_gap, counts) if min_gap is not None else ())
    pairs, seen = [], set()
    for pair in found:
        key = (pair["id"], pair["chosen"].strip(), pair["rejected"].strip())
        if not key[1] or not key[2]:
            counts[f"skipped_empty_answer_{pair['origin']}"] += 1
        elif key[1] == key[2]:
            counts[f"skipped_same_text_{pair['origin']}"] += 1
        elif key in seen:
            counts["skipped_repeated_pair"] += 1
        else:
            seen.add(key)
            pairs.append(pair)
            counts[pair["origin"]] += 1
    return pl.DataFrame(pairs, schema=PAIR_SCHEMA), counts


def _answer(row: dict) -> str | None:
    """The row's final answer: `output`, else the last assistant turn of `messages`."""
    if row.get("output") is not None:
        return row["output"]
    turns = record_messages(row)
    return turns[-1]["content"] if turns[-1]["role"] == "assistant" else None


def _pair(row: dict, chosen: str, rejected: str, origin: str, *, chosen_id: str, rejected_id: str,
          reviewer: str | None, gap: float | None = None) -> dict:
    return {"id": row["id"], "prompt": record_messages(row, with_output=False), "chosen": chosen,
            "rejected": rejected, "origin": origin, "chosen_id": chosen_id, "rejected_id": rejected_id,
            "reviewer": reviewer, "round": row.get("round"), "gap": gap}


def _reviewer(row: dict) -> str | None:
    return (row.get("review") or {}).get("annotator")


def _edit_pairs(rows: list[dict], counts: Counter):
    for row in rows:
        if row.get("status") != "edited":
            continue
        original = (row.get("review") or {}).get("original_output")
        if original is None or _answer(row) is None:
            counts["skipped_edit_without_original"] += 1
            continue
        yield _pair(row, _answer(row), original, "edit", chosen_id=row["id"], rejected_id=row["id"],
                    reviewer=_reviewer(row))


def _rejection_pairs(by_prompt: dict[str, list[dict]], counts: Counter):
    for group in by_prompt.values():
        good = [r for r in group if r.get("status") in ("accepted", "edited") and _answer(r) is not None]
        for bad in (r for r in group if r.get("status") == "rejected"):
            if not good or _answer(bad) is None:
                counts["skipped_rejected_without_answer"] += 1
                continue
            for row in good:
                yield _pair(row, _answer(row), _answer(bad), "rejection", chosen_id=row["id"],
                            rejected_id=bad["id"], reviewer=_reviewer(bad))


def _score(row: dict) -> float | None:
    return (row.get("scores") or {}).get("judge_score")


def _judge_pairs(by_prompt: dict[str, list[dict]], min_gap: float, counts: Counter):
    for group in by_prompt.values():
        judged = sorted((r for r in group if _score(r) is not None and r.get("status") != "rejected"
                         and _answer(r) is not None), key=_score)
        if len(judged) < 2:
            continue
        worst, best = judged[0], judged[-1]
        gap = _score(best) - _score(worst)
        if gap < min_gap:
            counts["skipped_judge_gap_below_min"] += 1
            continue
        yield _pair(best, _answer(best), _answer(worst), "judge", chosen_id=best["id"], rejected_id=worst["id"],
                    reviewer=best.get("teacher"), gap=gap)


def trl_rows(pairs: pl.DataFrame) -> list[dict]:
    """TRL's conversational preference format: prompt turns, then the chosen and the rejected
    assistant turn (DPOTrainer applies the model's chat template itself)."""
    return [{"prompt": p["prompt"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs.iter_rows(named=True)]


def read_pairs(path: str | Path) -> pl.DataFrame:
    """A pairs table (.parquet or .jsonl): `seedloop pairs` output, or TRL's preference JSONL (prompt as
    text or turns; chosen and rejected as text or assistant turns). InputError names the file, line and
    field of the first bad row."""
    path = Path(path)
    kind = table_format(path)
    require_file(path)
    try:
        raw = pl.read_parquet(path).to_dicts() if kind == "parquet" else _jsonl_rows(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"cannot read pairs: {exc}", file=str(path)) from exc
    rows = []
    for n, row in enumerate(raw, 1):
        where = {"file": str(path), "line": n if kind == "jsonl" else f"row {n}"}
        for field in ("prompt", "chosen", "rejected"):
            if not row.get(field):
                raise InputError(f"a preference pair needs '{field}' (found {row.get(field)!r})", field=field, **where)
        prompt = row["prompt"]
        turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        rows.append({**{k: row.get(k) for k in PAIR_SCHEMA}, "prompt": turns,
                     "chosen": _text_of(row["chosen"], "chosen", where),
                     "rejected": _text_of(row["rejected"], "rejected", where)})
    return pl.DataFrame(rows, schema=PAIR_SCHEMA)


def _jsonl_rows(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"malformed JSON: {exc.msg}", file=str(path), line=lineno) from exc
    return rows


def _text_of(value, field: str, where: dict) -> str:
    """An answer as text: a string, or TRL's list of turns ending in the assistant's."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and value[-1].get("role") == "assistant":
        return str(value[-1].get("content") or "")
    raise InputError("expected text or a list of turns ending with the assistant's", field=field, **where)
