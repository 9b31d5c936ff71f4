"""What every command shares: the console, error handling, default paths."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from seedloop.core.errors import InputWarning, SeedloopError

# emoji off: "openai:x:" is a teacher spec, not ❌
console = Console(stderr=True, emoji=False)   # progress, summaries and errors
out = Console(emoji=False)                    # results a user may pipe elsewhere


def default_cache() -> Path:
    """The request cache and ledger: $SEEDLOOP_CACHE, else .seedloop/cache.sqlite here."""
    return Path(os.environ.get("SEEDLOOP_CACHE") or Path(".seedloop") / "cache.sqlite")


def more_than(low: float):
    """A typer callback for a bound that is not allowed itself (typer's min= allows it): a rate of 0
    would never send, an interval of 0 would poll without pause."""

    def check(value):
        if value is not None and not value > low:
            raise typer.BadParameter(f"must be more than {low:g}, got {value:g}")
        return value

    return check


def handle_errors(fn):
    """Turn seedloop's errors into one red line and an exit code; anything else is a bug and shows a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                # every suspicious line is named, not only the first one warned about from the same code
                warnings.simplefilter("always", InputWarning)
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
                return fn(*args, **kwargs)
        except SeedloopError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; nothing was written (re-run to resume from the cache)[/]")
            raise typer.Exit(130) from None

    return wrapper


def _show_warning(show_other, message, category, *args, **kwargs) -> None:
    """Our input warnings as one yellow line each; other libraries' warnings as Python shows them."""
    if issubclass(category, InputWarning):
        console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        show_other(message, category, *args, **kwargs)


def quiet_libraries() -> None:
    """Silence library chatter a user cannot act on, before a command loads the models."""
    # bitsandbytes warns that an optional fused CPU kernel (for the eval path we turn off) is missing,
    # and transformers/peft warn about renamed methods they call themselves: nothing a user can act on
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()   # our own progress bar is the one to watch
    warnings.filterwarnings("ignore", message=".*gemv_4bit.*")
