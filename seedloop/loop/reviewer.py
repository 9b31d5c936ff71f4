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
annotation per task, never two) when a project is set. Label Studio credits an annotation to the
token's user, so there each annotation carries the comment MARK, and `mark_automatic` gives the
pulled rows whose only verdict it is the annotator 'auto-reviewer' again.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from seedloop.core.heuristics import check_instruction, check_output
from seedloop.core.record import conform
from seedloop.core.text import rouge_l

ANNOTATOR = "auto-reviewer"
# the comment of its Label Studio annotations: what tells them from a person's after a pull
MARK = f"{ANNOTATOR}: the automatic reviewer's verdict, not a person's"


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
    from curate.review import require_project

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
        conn.call("annotating a task", conn.sdk.annotations.create, id=task.id, result=annotation(status, output))
        counts["annotated"] += 1
    return counts


def annotation(status: str, output: str | None) -> list[dict]:
    """The result of one Label Studio annotation (review.xml's controls) saying `status`, signed MARK."""
    from curate.review import ACCEPT, CHOICES, COMMENT, OBJECT, OUTPUT, REJECT, TEXTAREA, VERDICT

    result = [{"from_name": VERDICT, "to_name": OBJECT, "type": CHOICES,
               "value": {"choices": [REJECT if status == "rejected" else ACCEPT]}},
              {"from_name": COMMENT, "to_name": OBJECT, "type": TEXTAREA, "value": {"text": [MARK]}}]
    if status != "rejected":
        result.insert(0, {"from_name": OUTPUT, "to_name": OBJECT, "type": TEXTAREA, "value": {"text": [output or ""]}})
    return result


def mark_automatic(df: pl.DataFrame) -> pl.DataFrame:
    """Pulled records whose one verdict is the automatic reviewer's (comment MARK) with the annotator
    'auto-reviewer' instead of the token's user; a record a person voted on too keeps the names."""
    auto = pl.col("review").struct.field("comment") == MARK
    marked = pl.col("review").struct.with_fields(pl.lit(ANNOTATOR).alias("annotator"))
    return df.with_columns(pl.when(auto).then(marked).otherwise(pl.col("review")).alias("review"))
