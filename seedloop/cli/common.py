"""What every command shares: the console, error handling, default paths, the progress bars, and
the parsing of options several commands take (--labels, output table paths)."""

from __future__ import annotations

import functools
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Callable

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from seedloop.core.errors import ConfigError, InputError, InputWarning, SeedloopError, require_file
from seedloop.core.tables import TABLE_SUFFIXES, read_table

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


class StepProgress:
    """The one bridge from the library's progress callbacks to rich bars on stderr. Called as
    progress(step, done, total), it draws one bar per named step, added when the step first reports.
    `remaining` adds an estimate of the time left; `note` a text column after the count (train's loss).

    A command wraps a whole library call in it: while it is open, stray prints of the libraries go to
    stderr with the bars, and if no step reported (an error while reading or checking the input), it
    leaves no empty line behind."""

    def __init__(self, *, remaining: bool = False, note: bool = False):
        columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   *([TextColumn("{task.fields[note]}")] if note else []), TimeElapsedColumn(),
                   *([TimeRemainingColumn()] if remaining else [])]
        self.bar = Progress(*columns, console=console)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "StepProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.tasks:
            self.bar.stop()
        else:   # Progress.stop would print an empty render and a blank line when stderr is a file
            self.bar.live.transient = True
            self.bar.live.stop()

    def __contains__(self, step: str) -> bool:
        return step in self.tasks

    def __call__(self, step: str, done: int | None = None, total: int | None = None, *,
                 note: str | None = None) -> None:
        """None leaves the count, the total or the note as they are."""
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total, note="")
        self.bar.update(self.tasks[step], completed=done, total=total, **({} if note is None else {"note": note}))

    def counter(self, step: str, total: int | None) -> Callable[..., None]:
        """progress(done, total=None) for one step, its bar shown from now on, at 0 of `total`."""
        self(step, 0, total)
        return lambda done, total=None: self(step, done, total)


RAY_ADDRESS = typer.Option(None, "--ray-address", help="Ray cluster to use with --executor ray (else $RAY_ADDRESS; "
                           "with neither, Ray starts on this machine).")
RPM = typer.Option(None, callback=more_than(0), help="Requests-per-minute limit.")
TPM = typer.Option(None, callback=more_than(0), help="Tokens-per-minute limit (prompt estimate + max tokens).")
ADAPTIVE = typer.Option(True, "--adaptive/--no-adaptive", help="Find the server's rate limit from its 429s and pace "
                        "requests to it (additive increase, multiplicative decrease; --concurrency stays the cap).")


def _license_id(value: str | None) -> str:
    from seedloop.core.dataset_card import check_license

    try:
        return check_license(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--license must be ")) from None


HF_DATASET = typer.Option(None, "--hf-dataset", help="Also save the table as a Hugging Face `datasets` folder here, "
                          "with a dataset card (README.md: counts, teachers, templates, settings, drops by reason).")
LICENSE = typer.Option("unknown", "--license", callback=_license_id,
                       help="Licence of the rows for the dataset card of --hf-dataset: a Hub licence id such as "
                       "cc-by-4.0, apache-2.0 or mit (default unknown: seedloop cannot know the seeds' or the "
                       "teacher's terms).")


@handle_errors   # it runs while the options are parsed, before the command and its own handle_errors
def _output_schema(path: Path | None):
    from synth.structured import load_schema

    return load_schema(path) if path else None


SCHEMA = typer.Option(None, "--schema", callback=_output_schema, help="JSON Schema file: every output is JSON valid "
                      "against it (OpenAI json_schema, Anthropic tool use, llama.cpp grammar); a failing answer is "
                      "asked again once, then dropped as schema_invalid. Instructions and inputs stay free text.")


def check_table_paths(paths: dict[str, Path | None]) -> None:
    """Tables to write ({option: path}, None where not given) must end in .parquet or .jsonl: checked
    before any work, so a typo costs nothing."""
    for option, path in paths.items():
        if path is not None and path.suffix.lower() not in TABLE_SUFFIXES:
            raise InputError(f"{option} must end in .parquet or .jsonl", file=str(path))


def parse_labels(labels: str | None, labels_from: str | Path | None = None) -> list[str] | None:
    """The label set: --labels comma-separated, or a .json list / .txt file (one label a line); or
    --labels-from, the distinct outputs of a record table. None when neither is given."""
    if labels and labels_from:
        raise ConfigError("give --labels or --labels-from, not both")
    if labels_from:
        require_file(labels_from, field="--labels-from")
        values = read_table(labels_from)["output"].drop_nulls().unique().sort().to_list()
        return [v for v in values if str(v).strip()]
    if not labels:
        return None
    path = Path(labels)
    if path.suffix not in (".json", ".txt"):
        return [label.strip() for label in labels.split(",") if label.strip()]
    require_file(path, "labels file")
    text = path.read_text(encoding="utf-8")
    try:
        found = json.loads(text) if path.suffix == ".json" else [line.strip() for line in text.splitlines()]
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if not isinstance(found, list):
        raise InputError("expected a JSON list of labels", file=str(path))
    return [str(label) for label in found if str(label).strip()]
