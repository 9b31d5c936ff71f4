"""The request cache and the token/cost ledger, one SQLite file.

Every completed request is stored under a hash of (provider, model, endpoint, parameters, messages)
before its result is used, so a run killed at any point and started again pays for nothing twice,
and another server never answers from this one's rows. The ledger is the same table read by teacher
and by job. Schema changes are append-only numbered migrations (`PRAGMA user_version` holds how many
have run; see seedloop/core/sqlite.py). Rows of API teachers written before the endpoint joined the key
stay in the ledger, but no request matches them again (in-process teachers have no endpoint, and
their keys did not change).

The `runs` table says what each `generate` run produced (records, and the requests its slots made, sent
or answered from here): the measured yield that the cost estimate (synth/estimate.py) divides by.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import astuple, dataclass
from pathlib import Path

from seedloop.core.sqlite import open_db
from synth.teachers.base import ChatRequest, Completion

MIGRATIONS = [
    """
    CREATE TABLE requests (
        key TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        text TEXT NOT NULL,
        finish_reason TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost REAL NOT NULL,
        job TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX requests_job ON requests (job);
    """,
    # which server answered ('' for an in-process model, and for rows written before this column)
    "ALTER TABLE requests ADD COLUMN endpoint TEXT NOT NULL DEFAULT ''",
    # what each generate run produced, for the estimate of the next one
    """
    CREATE TABLE runs (
        job TEXT NOT NULL,
        method TEXT NOT NULL,
        turns INTEGER NOT NULL,
        teacher TEXT NOT NULL,
        records INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        sent INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX runs_method ON runs (method, teacher);
    """,
]


@dataclass(frozen=True)
class LedgerRow:
    teacher: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True)
class RunRow:
    """One generate run: records kept, requests its slots made (sent or cached), and the sent ones' output."""
    job: str
    method: str
    turns: int
    teacher: str
    records: int
    requests: int
    sent: int
    output_tokens: int


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = open_db(self.path, MIGRATIONS, what="request cache")

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT text, finish_reason, input_tokens, output_tokens FROM requests WHERE key = ?",
                               (key,)).fetchone()
        if row is None:
            return None
        return Completion(text=row[0], finish_reason=row[1], input_tokens=row[2], output_tokens=row[3])

    def put(self, key: str, provider: str, model: str, request: ChatRequest, result: Completion,
            cost: float, job: str, endpoint: str = "") -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO requests (key, provider, model, request, text, finish_reason, input_tokens, "
            "output_tokens, cost, job, created_at, endpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, provider, model, json.dumps(request.canonical(), ensure_ascii=False), result.text,
             result.finish_reason, result.input_tokens, result.output_tokens, cost, job,
             dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), endpoint))

    def spent(self, job: str) -> float:
        return self._db.execute("SELECT COALESCE(SUM(cost), 0) FROM requests WHERE job = ?", (job,)).fetchone()[0]

    def ledger(self, job: str | None = None) -> list[LedgerRow]:
        where, args = ("WHERE job = ?", (job,)) if job else ("", ())
        rows = self._db.execute(
            f"SELECT provider || ':' || model, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost) "
            f"FROM requests {where} GROUP BY 1 ORDER BY 5 DESC, 1", args).fetchall()
        return [LedgerRow(*r) for r in rows]

    def record_run(self, run: RunRow) -> None:
        self._db.execute(
            "INSERT INTO runs (job, method, turns, teacher, records, requests, sent, output_tokens, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*astuple(run), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))

    def runs(self, method: str, teacher: str, turns: int = 1) -> list[RunRow]:
        """The latest run of each job with this method, teacher and turns (a re-run replaces its job's figures)."""
        rows = self._db.execute(
            "SELECT job, method, turns, teacher, records, requests, sent, output_tokens FROM runs WHERE rowid IN "
            "(SELECT MAX(rowid) FROM runs WHERE method = ? AND teacher = ? AND turns = ? GROUP BY job) ORDER BY rowid",
            (method, teacher, turns)).fetchall()
        return [RunRow(*r) for r in rows]

    def jobs(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT job FROM requests ORDER BY 1")]

    def close(self) -> None:
        self._db.close()
