"""The one way seedloop opens a SQLite file: WAL, a busy timeout, and numbered migrations.

`PRAGMA user_version` holds how many of a store's migrations have run; migrations are append-only,
so a file written by an older seedloop is brought up to date on open and never rewritten. A path
that is a directory, or a file that is not SQLite, is an InputError naming the file (sqlite3 would
only say "unable to open database file" or "file is not a database", without the path).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

from seedloop.core.errors import InputError


def open_db(path: str | Path, migrations: Sequence[str], *, what: str = "cache") -> sqlite3.Connection:
    """A connection in autocommit mode, migrated; `what` names the file's role in errors."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"is a directory, expected the {what} (a SQLite file)", file=str(path))
    db = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode; WAL keeps readers (`seedloop ledger`) from blocking a running job
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
        db.execute("PRAGMA busy_timeout=10000")
        _migrate(db, migrations)
    except sqlite3.DatabaseError as exc:   # "file is not a database", "unable to open database file", ...
        if db is not None:
            db.close()
        raise InputError(f"cannot use it as the {what}: {exc}", file=str(path)) from None
    except OSError as exc:   # a parent that is a file, no permission
        raise InputError(f"cannot use it as the {what}: {exc.strerror or exc}", file=str(path)) from None
    return db


def _migrate(db: sqlite3.Connection, migrations: Sequence[str]) -> None:
    done = db.execute("PRAGMA user_version").fetchone()[0]
    for i, sql in enumerate(migrations[done:], done + 1):
        db.executescript(f"BEGIN; {sql}; PRAGMA user_version = {i}; COMMIT;")
