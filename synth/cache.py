"""The request cache and the token/cost ledger, one SQLite file.

Every completed request is stored under a hash of (provider, model, parameters, messages) before its
result is used, so a run killed at any point and started again pays for nothing twice. The ledger is
the same table read by teacher and by job. Schema changes are append-only numbered migrations
(`PRAGMA user_version` holds how many have run).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

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
]


@dataclass(frozen=True)
class LedgerRow:
    teacher: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode; WAL keeps readers (`seedloop ledger`) from blocking a running job
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()

    def _migrate(self) -> None:
        done = self._db.execute("PRAGMA user_version").fetchone()[0]
        for i, sql in enumerate(MIGRATIONS[done:], done + 1):
            self._db.executescript(f"BEGIN; {sql}; PRAGMA user_version = {i}; COMMIT;")

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT text, finish_reason, input_tokens, output_tokens FROM requests WHERE key = ?",
                               (key,)).fetchone()
        if row is None:
            return None
        return Completion(text=row[0], finish_reason=row[1], input_tokens=row[2], output_tokens=row[3])

    def put(self, key: str, provider: str, model: str, request: ChatRequest, result: Completion,
            cost: float, job: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, provider, model, json.dumps(request.canonical(), ensure_ascii=False), result.text,
             result.finish_reason, result.input_tokens, result.output_tokens, cost, job,
             dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))

    def spent(self, job: str) -> float:
        return self._db.execute("SELECT COALESCE(SUM(cost), 0) FROM requests WHERE job = ?", (job,)).fetchone()[0]

    def ledger(self, job: str | None = None) -> list[LedgerRow]:
        where, args = ("WHERE job = ?", (job,)) if job else ("", ())
        rows = self._db.execute(
            f"SELECT provider || ':' || model, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost) "
            f"FROM requests {where} GROUP BY 1 ORDER BY 5 DESC, 1", args).fetchall()
        return [LedgerRow(*r) for r in rows]

    def jobs(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT job FROM requests ORDER BY 1")]

    def close(self) -> None:
        self._db.close()
