"""Errors users can act on. Only the CLI turns them into exit codes."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path


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
        super().__init__(located(message, file=file, line=line, field=field))


def located(message: str, *, file: str | None = None, line: int | str | None = None,
            field: str | None = None) -> str:
    """'FILE:LINE field 'F': message' (or '(item 3)' for a phrase), leaving out the parts not known."""
    where = ""
    if file:
        where = str(file)
        if isinstance(line, int):
            where = f"{file}:{line}"
        elif line:
            where = f"{file} ({line})"
    if field:
        where = f"{where} field '{field}'" if where else f"field '{field}'"
    return f"{where}: {message}" if where else message


class InputWarning(UserWarning):
    """Input that is read, but probably not as meant (a huge field, a number where text belongs).

    Library code only warns; the CLI prints each warning as one line on stderr.
    """


def warn_input(message: str, *, file: str | None = None, line: int | str | None = None,
               field: str | None = None) -> None:
    warnings.warn(InputWarning(located(message, file=file, line=line, field=field)), stacklevel=2)


def require_file(path: str | Path, what: str = "file", *, field: str | None = None) -> Path:
    """`path` as a Path if it is a file; else an InputError that says what is there instead."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"is a directory, expected a {what}", file=str(path), field=field)
    if not path.is_file():
        raise InputError(f"{what} not found", file=str(path), field=field)
    return path


class ConfigError(SeedloopError):
    """A missing environment variable, a bad option or a bad config key."""

    exit_code = 2


class TeacherError(SeedloopError):
    """The teacher endpoint failed for good (after retries), or answered nonsense."""


class BudgetExceeded(SeedloopError):
    """The next request would pass --max-cost; the run stops cleanly before it."""


def describe_exit(returncode: int) -> str:
    """'died with SIGILL (signal 4)' for a negative return code -N, else 'exited with status N'."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = f"{signal.Signals(-returncode).name} (signal {-returncode})"
    except ValueError:   # a real-time signal has no name
        name = f"signal {-returncode}"
    return f"died with {name}"
