"""`seedloop doctor`: check this machine before a long run (the logic is in seedloop/cli/checks.py)."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from seedloop.cli.common import console, handle_errors, out
from seedloop.cli.checks import Result, default_checks, run_check

STYLE = {"ok": "green", "FAIL": "bold red", "skipped": "dim"}


@handle_errors
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
) -> None:
    """Check that each packaged model runs here (teacher, student, embedder), and that Label Studio
    ($LABEL_STUDIO_URL) and Ray answer when configured.

    Each check runs in a child process, so a crash (e.g. SIGILL in llama.cpp) is reported with a fix.
    Exits 1 if any check that ran failed.
    """
    results = []
    for check in default_checks():
        with console.status(f"checking {check.name} ..."):
            results.append(run_check(check))
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in results]))
    else:
        out.print(results_table(results))
    if any(r.status == "FAIL" for r in results):
        raise typer.Exit(1)


def results_table(results: list[Result]) -> Table:
    failed = any(r.status == "FAIL" for r in results)
    table = Table(title="seedloop doctor")
    for col in ("check", "status", "s", "detail") + (("fix",) if failed else ()):
        table.add_column(col, justify="right" if col == "s" else "left", overflow="fold")
    for r in results:
        cells = [r.check, f"[{STYLE[r.status]}]{r.status}[/]", f"{r.seconds:.1f}", escape(r.detail)]
        table.add_row(*cells, *([escape(r.fix) if r.status == "FAIL" else ""] if failed else []))
    return table
