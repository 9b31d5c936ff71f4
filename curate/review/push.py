"""Push a record table to a Label Studio project, once.

Idempotent by record id: the ids already in the project are listed first and skipped, so pushing
the same table twice, or again after a crash between batches, imports each record exactly once.
A batch that failed in flight may still have landed (the server commits, the answer is lost); before
retrying it, the ids in the project are listed again and only the missing ones are sent.

Not handled: two pushes to the same project at the same moment can both import a record.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from curate.review import tasks
from curate.review.connection import LabelStudioConnection
from curate.review.errors import ReviewError
from curate.review.project import Project, ensure_project, existing_record_ids
from seedloop.core.errors import InputError

MAX_BATCH = 1000   # the limit per import request; the server would take more


@dataclass
class PushResult:
    project: Project
    rows: int
    imported: int = 0
    batches: int = 0
    seconds: float = 0.0
    skipped: Counter = field(default_factory=Counter)   # reason -> rows not imported
    # Label Studio prefills only predictions whose model_version is the project's: the latest push
    # sets it, so a later round's predictions replace an earlier round's
    model_version: str | None = None


def check_table(df: pl.DataFrame, where: str) -> None:
    """Raise InputError naming the first row without an instruction, or a table with no outputs at all."""
    if df.height and df["output"].null_count() == df.height:
        raise InputError("no row has an output: review needs the generated answers", file=where, field="output")
    rows = df.with_row_index("row")
    for name, bad in (("id", pl.col("id").is_null()),
                      ("instruction", pl.col("instruction").fill_null("").str.strip_chars() == "")):
        found = rows.filter(bad)
        if found.height:
            raise InputError(f"{found.height} row(s) have an empty {name}", file=where,
                             line=f"row {found['row'][0] + 1}", field=name)


def push_records(conn: LabelStudioConnection, df: pl.DataFrame, project: str, *, batch_size: int = MAX_BATCH,
                 overlap: int = 1, model_version: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> PushResult:
    """Create `project` if needed and import each record of `df` not already in it.

    `model_version` names the predictions (default: the teacher or round the records share); the
    project is set to prefill that version.

    `progress(done, total)` is called after each batch, counting rows already present as done.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise InputError(f"batch size must be between 1 and {MAX_BATCH} (found {batch_size})", field="batch_size")
    start = time.perf_counter()
    proj = ensure_project(conn, project, overlap=overlap)
    result = PushResult(proj, rows=df.height)
    records = _unique(df.to_dicts(), result.skipped)
    present = conn.call("listing the tasks already in the project", existing_record_ids, conn, proj.id)
    todo = [r for r in records if r["id"] not in present]
    result.skipped["already_in_project"] += len(records) - len(todo)
    done = len(records) - len(todo)
    if progress:
        progress(done, len(records))
    version = (model_version or tasks.model_version(records)) if records else None
    for i in range(0, len(todo), batch_size):
        batch = [tasks.to_task(r, version) for r in todo[i:i + batch_size]]
        sent = _import(conn, proj.id, batch, result.skipped)
        result.imported += sent
        result.batches += 1
        done += len(batch)
        if progress:
            progress(done, len(records))
    if version:  # on every push, so a re-run after a crash converges to the same setting
        conn.call("selecting the predictions to prefill", conn.sdk.projects.update, id=proj.id, model_version=version)
        result.model_version = version
    result.seconds = time.perf_counter() - start
    return result


def _import(conn: LabelStudioConnection, project_id: int, batch: list[dict], skipped: Counter) -> int:
    """Import one batch; on a retry, first drop the tasks an earlier attempt already delivered."""

    def attempt(n: int) -> int:
        todo = batch
        if n:
            present = existing_record_ids(conn, project_id)
            todo = [t for t in batch if t["data"]["record_id"] not in present]
        if not todo:
            return 0
        answer = conn.sdk.projects.import_tasks(id=project_id, request=todo, return_task_ids=False)
        if answer.task_count is not None and answer.task_count != len(todo):
            raise ReviewError(f"Label Studio imported {answer.task_count} of {len(todo)} tasks; "
                              f"run the same push again to send the rest")
        return len(todo)

    sent = conn.retry(f"importing {len(batch)} tasks", attempt)
    if sent < len(batch):
        skipped["landed_before_retry"] += len(batch) - sent   # the last attempt found them already there
    return sent


def _unique(records: list[dict], skipped: Counter) -> list[dict]:
    seen: set[str] = set()
    out = []
    for rec in records:
        if rec["id"] in seen:
            skipped["duplicate_id_in_table"] += 1
            continue
        seen.add(rec["id"])
        out.append(rec)
    return out
