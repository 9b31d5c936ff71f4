"""`seedloop seeds inspect`: what a seed file (or `datasets` folder) holds and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from seedloop.cli.common import handle_errors, out
from synth.seeds import FORMATS, inspect_seeds

app = typer.Typer(help="Look at seed files before generating from them.", no_args_is_help=True)


@app.command("inspect")
@handle_errors
def inspect_cmd(
    file: Path = typer.Argument(..., help="Seed file (.jsonl, .json, .csv or .parquet), or a `datasets` folder "
                                "(`Dataset.save_to_disk`)."),
    format: str = typer.Option(None, "--format", help=f"Force a format: {', '.join(FORMATS)}."),
    show: int = typer.Option(3, min=0, help="How many converted records to print."),
) -> None:
    """Print the file's format, row and record counts, fields, and every problem by line and field."""
    rep = inspect_seeds(file, format)
    table = Table(title=str(file), show_header=False)
    table.add_row("file type", rep.file_kind)
    table.add_row("format", rep.format + ("" if format else " (detected)"))
    table.add_row("rows", str(rep.rows))
    table.add_row("records", f"{len(rep.records)} (one per instance)" if rep.format == "self_instruct"
                  else str(len(rep.records)))
    table.add_row("fields", ", ".join(f"{k} ({v})" for k, v in rep.fields.most_common()))
    table.add_row("duplicates", f"{rep.duplicates} (same instruction and input; dropped on load)")
    table.add_row("without output", str(rep.without_output))
    table.add_row("problems", f"[red]{len(rep.problems)}[/]" if rep.problems else "[green]0[/]")
    table.add_row("warnings", f"[yellow]{len(rep.warnings)}[/] (on stderr)" if rep.warnings else "0")
    out.print(table)
    rep.warn()
    for p in rep.problems[:50]:
        where = f"line {p.where}" if isinstance(p.where, int) else p.where
        out.print(f"  [red]{where}[/]{f' field {p.field!r}' if p.field else ''}: {p.message}", highlight=False)
    if len(rep.problems) > 50:
        out.print(f"  ... and {len(rep.problems) - 50} more")
    for rec in rep.records[:show]:
        out.print({k: _clip(rec[k]) for k in ("id", "instruction", "input", "output")})
    if rep.problems:
        raise typer.Exit(2)


def _clip(value, limit: int = 500):
    """A preview, not the whole text: a megabyte-long field would bury the report."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}… ({len(value):,} characters in all)"
    return value
