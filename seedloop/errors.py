"""Errors users can act on. Only the CLI turns them into exit codes."""

from __future__ import annotations


class SeedloopError(Exception):
    """Base class: the message says what was expected, what was found, and where."""

    exit_code = 1


class InputError(SeedloopError):
    """Bad user input: a file, a row or a field that does not fit."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | str | None = None,
                 field: str | None = None):
        """`line` is a line number (JSONL, CSV) or a phrase such as 'item 3' (JSON, Parquet)."""
        self.file, self.line, self.field = file, line, field
        where = ""
        if file:
            where = str(file)
            if isinstance(line, int):
                where = f"{file}:{line}"
            elif line:
                where = f"{file} ({line})"
        if field:
            where = f"{where} field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(SeedloopError):
    """A missing environment variable, a bad option or a bad config key."""

    exit_code = 2


class TeacherError(SeedloopError):
    """The teacher endpoint failed for good (after retries), or answered nonsense."""


class BudgetExceeded(SeedloopError):
    """The next request would pass --max-cost; the run stops cleanly before it."""
