"""What every command shares: the console, error handling, default paths."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from seedloop.errors import SeedloopError

# emoji off: "openai:x:" is a teacher spec, not ❌
console = Console(stderr=True, emoji=False)   # progress, summaries and errors
out = Console(emoji=False)                    # results a user may pipe elsewhere


def default_cache() -> Path:
    """The request cache and ledger: $SEEDLOOP_CACHE, else .seedloop/cache.sqlite here."""
    return Path(os.environ.get("SEEDLOOP_CACHE") or Path(".seedloop") / "cache.sqlite")


def handle_errors(fn):
    """Turn seedloop's errors into one red line and an exit code; anything else is a bug and shows a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SeedloopError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; nothing was written (re-run to resume from the cache)[/]")
            raise typer.Exit(130) from None

    return wrapper
