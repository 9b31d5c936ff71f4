"""The automatic reviewer: a documented stand-in for annotators, for demos and tests.

For each selected record it compares the student's prefilled answer with the pool row's original
output (the teacher's answer, or the label a given pool carries):
- reject when the pool row fails the shared quality rules (seedloop/core/heuristics.py);
- accept the student's answer when ROUGE-L(student, teacher) >= `accept_rouge`;
- otherwise edit the answer to the pool row's output.
A classifier's answer is a label, right or wrong (ROUGE between two labels means nothing): accept it
when it is exactly the pool row's label, else edit it to that label; reject a row without one.

It is no substitute for people: it only agrees with the pool. Its rows keep their source (generated,
pool) as a Label Studio pull does, with `review.annotator` 'auto-reviewer', so no row claims a human
looked at it. It works on the selection table directly, or through the Label Studio API (one
annotation per task, never two) when a project is set.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from seedloop.core.heuristics import check_instruction, check_output
from seedloop.core.record import conform
from seedloop.core.text import rouge_l

ANNOTATOR = "auto-reviewer"


def verdict(student: str | None, teacher: str | None, instruction: str, accept_rouge: float, *,
            labels: bool = False) -> tuple[str, str | None]:
    """(status, output): accepted/edited/rejected and the answer to keep (None when rejected).
    `labels`: the student is a classifier, so only the exact label is right."""
    if labels:
        if not (teacher or "").strip():
            return "rejected", None   # nothing to check the label against
        return ("accepted", student) if student == teacher else ("edited", teacher)
    if check_instruction(instruction) or check_output(instruction, teacher):
        return "rejected", None
    if student and rouge_l(student, teacher or "") >= accept_rouge:
        return "accepted", student
    return "edited", teacher


def review_table(picks: pl.DataFrame, pool: pl.DataFrame, accept_rouge: float, *, labels: bool = False) -> pl.DataFrame:
    """The picks as reviewed records (their source kept), without Label Studio."""
    teacher = dict(zip(pool["id"], pool["output"]))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for rec in picks.to_dicts():
        status, output = verdict(rec["output"], teacher.get(rec["id"]), rec["instruction"], accept_rouge, labels=labels)
        rows.append({**rec, "status": status, "output": output if output is not None else rec["output"],
                     "review": {"annotator": ANNOTATOR, "reviewed_at": now, "agreement": 1.0,
                                "original_output": rec["output"] if status == "edited" else None,
                                "rating": None, "comment": None}})
    return conform(pl.DataFrame(rows, schema=picks.schema) if rows else picks.clear(), where="auto review")


def annotate_in_label_studio(conn, project: str, picks: pl.DataFrame, pool: pl.DataFrame,
                             accept_rouge: float, *, labels: bool = False) -> dict:
    """Annotate the picks' tasks through the API; tasks that already have an annotation are left alone."""
    from curate.review.project import require_project

    proj = require_project(conn, project)
    teacher = dict(zip(pool["id"], pool["output"]))
    wanted = set(picks["id"])
    by_id = {r["id"]: r for r in picks.to_dicts()}
    tasks = conn.call("listing tasks", lambda: list(conn.sdk.tasks.list(project=proj.id, fields="all",
                                                                        page_size=1000)))
    counts = {"annotated": 0, "already": 0}
    for task in tasks:
        rid = (task.data or {}).get("record_id")
        if rid not in wanted:
            continue
        if (getattr(task, "total_annotations", None) or len(getattr(task, "annotations", None) or [])) > 0:
            counts["already"] += 1
            continue
        rec = by_id[rid]
        status, output = verdict(rec["output"], teacher.get(rid), rec["instruction"], accept_rouge, labels=labels)
        result = [{"from_name": "verdict", "to_name": "instruction", "type": "choices",
                   "value": {"choices": ["Reject" if status == "rejected" else "Accept"]}}]
        if status != "rejected":
            result.insert(0, {"from_name": "output", "to_name": "instruction", "type": "textarea",
                              "value": {"text": [output or ""]}})
        conn.call("annotating a task", conn.sdk.annotations.create, id=task.id, result=result)
        counts["annotated"] += 1
    return counts
