"""Records to Label Studio tasks and back.

A task's data holds what the annotator sees (instruction, input, output), the record id, and the
rest of the record under `record` (source, parents, teacher, prompt, round, scores, ...), so a pull
rebuilds every record with its lineage from the project alone. The prediction prefills the answer
box with the generated output; its `model_version` is the teacher (else the round) of the pushed
table, and its `score` the judge score (else the uncertainty), so annotators can sort by it.
"""

from __future__ import annotations

import math
from typing import Any

from prompts import load_text
from seedloop.core.record import SCHEMA

CONFIG = "label_studio/review.xml"
INSTRUCTIONS = "label_studio/review_instructions.xml"
# names in review.xml that verdicts.py reads back
OBJECT, OUTPUT, VERDICT, RATING, COMMENT = "instruction", "output", "verdict", "rating", "comment"
# the values of the verdict's two choices in review.xml, and the result types of its controls
ACCEPT, REJECT = "Accept", "Reject"
TEXTAREA, CHOICES = "textarea", "choices"
SHOWN = ("instruction", "input", "output")
LINEAGE = tuple(c for c in SCHEMA if c not in ("id", *SHOWN))


def label_config() -> tuple[str, str]:
    """The labeling config XML and its reference `name@hash`."""
    return load_text(CONFIG)


def instructions() -> str:
    return load_text(INSTRUCTIONS)[0]


def model_version(records: list[dict]) -> str:
    """One version for a whole push: the teacher they share, else the round they share, else 'mixed'.

    One, because Label Studio prefills only predictions whose model_version is the project's.
    """
    teachers = {r.get("teacher") for r in records}
    if len(teachers) == 1 and None not in teachers:
        return str(teachers.pop())
    rounds = {r.get("round") for r in records}
    if len(rounds) == 1 and None not in rounds:
        return f"round-{rounds.pop()}"
    return "mixed"


def score(rec: dict) -> float | None:
    scores = rec.get("scores") or {}
    for key in ("judge_score", "uncertainty"):
        value = scores.get(key)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def to_task(rec: dict, version: str | None = None) -> dict:
    """One record (a dict with the schema's columns) as a task with its prediction."""
    output = rec.get("output") or ""
    data = {"record_id": rec["id"], "instruction": rec.get("instruction") or "", "input": rec.get("input") or "",
            "output": output, "record": _jsonable({k: rec.get(k) for k in LINEAGE})}
    prediction: dict[str, Any] = {"model_version": version or model_version([rec]), "result": []}
    if output:
        prediction["result"] = [{"from_name": OUTPUT, "to_name": OBJECT, "type": TEXTAREA,
                                 "value": {"text": [output]}}]
    if (s := score(rec)) is not None:
        prediction["score"] = s
    return {"data": data, "predictions": [prediction]}


def to_record(data: dict) -> dict:
    """The record a task was made from, as pushed (before any verdict)."""
    rec = {k: None for k in SCHEMA}
    rec.update(data.get("record") or {})
    rec.update(id=data["record_id"], **{k: data.get(k) for k in SHOWN})
    return rec


def _jsonable(value: Any) -> Any:
    # NaN and inf are not JSON: the server's parser would reject the whole batch
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
