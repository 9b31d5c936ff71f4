"""Pull verdicts back: export the project through the SDK and map annotations onto records.

Every task becomes its record again (lineage included, see tasks.py). A reviewed record gets
`status` accepted / rejected / edited and the `review` struct; an edited one gets the new `output`
(and the last assistant turn of `messages`), with the old answer in `review.original_output`.
Records nobody reviewed keep the status they were pushed with. Several tasks carrying one record id
(pushed twice by hand, say) count once, with all their annotations pooled.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from curate.review.connection import LabelStudioConnection
from curate.review.project import require_project
from curate.review.tasks import to_record
from curate.review.verdicts import Decision, Vote, decide, read_annotation
from seedloop.core.record import to_frame


@dataclass
class ReviewStats:
    tasks: int = 0
    records: int = 0
    reviewed: int = 0
    verdicts: Counter = field(default_factory=Counter)    # accepted / rejected / edited -> records
    multi: int = 0                                        # records with two or more votes
    agreement: float | None = None                        # mean agreement over those records
    skipped: Counter = field(default_factory=Counter)     # reason -> tasks or annotations left out


def pull_records(conn: LabelStudioConnection, project: str) -> tuple[pl.DataFrame, ReviewStats]:
    """Every record in `project` with its verdict, and the totals."""
    proj = require_project(conn, project)
    exported = _export(conn, proj.id, all_tasks=True)
    emails = _emails(conn)
    groups, stats = _group(exported)
    records, decisions = [], []
    for data, anns in groups.values():
        rec = to_record(data)
        decision = _decide(anns, data.get("output"), emails, stats.skipped)
        if decision is not None:
            _apply(rec, decision)
            decisions.append(decision)
        records.append(rec)
    _summarize(stats, decisions, len(records))
    return to_frame(records), stats


def review_status(conn: LabelStudioConnection, project: str) -> ReviewStats:
    """The totals of `pull_records` without building the table (exports annotated tasks only)."""
    proj = require_project(conn, project)
    info = conn.call(f"reading project '{project}'", conn.sdk.projects.get, proj.id)
    exported = _export(conn, proj.id, all_tasks=False)
    emails = _emails(conn)
    groups, stats = _group(exported)
    decisions = [d for data, anns in groups.values()
                 if (d := _decide(anns, data.get("output"), emails, stats.skipped)) is not None]
    stats.tasks = info.task_number or 0
    _summarize(stats, decisions, records=None)
    return stats


def _export(conn: LabelStudioConnection, project_id: int, *, all_tasks: bool) -> list[dict]:
    def download() -> list[dict]:
        body = b"".join(conn.sdk.projects.exports.download_sync(project_id, export_type="JSON",
                                                                  download_all_tasks=all_tasks))
        return json.loads(body)

    return conn.call("exporting the project", download)


def _emails(conn: LabelStudioConnection) -> dict[int, str]:
    users = conn.call("listing users", lambda: list(conn.sdk.users.list()))
    return {u.id: u.email for u in users if u.email}


def _group(exported: list[dict]) -> tuple[dict[str, tuple[dict, list[dict]]], ReviewStats]:
    """Tasks by record id, in export order; annotations of duplicate tasks pooled."""
    stats = ReviewStats(tasks=len(exported))
    groups: dict[str, tuple[dict, list[dict]]] = {}
    for task in exported:
        data = task.get("data") or {}
        rid = data.get("record_id")
        if not rid:
            stats.skipped["task_without_record_id"] += 1
            continue
        if rid in groups:
            stats.skipped["duplicate_task_for_record"] += 1
            groups[rid][1].extend(task.get("annotations") or [])
        else:
            groups[rid] = (data, list(task.get("annotations") or []))
    return groups, stats


def _decide(anns: list[dict], original: str | None, emails: dict[int, str], skipped: Counter) -> Decision | None:
    votes: list[Vote] = []
    for ann in anns:
        if ann.get("was_cancelled"):
            skipped["annotation_skipped_by_annotator"] += 1
            continue
        vote = read_annotation(ann, original, emails)
        if vote.status is None:
            skipped["annotation_without_verdict"] += 1
            continue
        votes.append(vote)
    return decide(votes)


def _apply(rec: dict, d: Decision) -> None:
    original = rec.get("output")
    rec["status"] = d.status
    if d.status == "edited":
        rec["output"] = d.output
        rec["messages"] = _edit_last_answer(rec.get("messages"), d.output)
    rec["review"] = {"annotator": d.annotators, "reviewed_at": d.reviewed_at,
                     "original_output": original if d.status == "edited" else None,
                     "agreement": d.agreement, "rating": d.rating, "comment": d.comment}


def _edit_last_answer(messages: list[dict] | None, answer: str | None) -> list[dict] | None:
    if not messages or messages[-1].get("role") != "assistant":
        return messages
    return [*messages[:-1], {**messages[-1], "content": answer}]


def _summarize(stats: ReviewStats, decisions: list[Decision], records: int | None) -> None:
    stats.records = records if records is not None else stats.tasks
    stats.reviewed = len(decisions)
    stats.verdicts = Counter(d.status for d in decisions)
    multi = [d for d in decisions if d.votes > 1]
    stats.multi = len(multi)
    stats.agreement = sum(d.agreement for d in multi) / len(multi) if multi else None
