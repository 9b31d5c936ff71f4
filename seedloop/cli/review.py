"""`seedloop review push | pull | status | serve`: human review in Label Studio."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import typer
from rich.table import Table

from seedloop.cli.common import HF_DATASET, LICENSE, StepProgress, check_table_paths, console, handle_errors, out
from seedloop.core.errors import ConfigError
from seedloop.core.tables import export_hf, read_table, write_table

CONNECTION_HELP = ("Connection: $LABEL_STUDIO_URL (or --url) and $LABEL_STUDIO_API_KEY, a personal access "
                   "token (Label Studio: Account & Settings > Personal Access Token).")
app = typer.Typer(no_args_is_help=True, add_completion=False, epilog=CONNECTION_HELP,
                  help="Human review in Label Studio: push records, annotate in the browser, pull verdicts back.")
_URL = typer.Option(None, "--url", help="Label Studio address (default $LABEL_STUDIO_URL).")
_RETRIES = typer.Option(4, min=0, help="Retries of a failed request, with exponential backoff (1 s, 2 s, 4 s, ...).")
_PROJECT = typer.Option(..., "--project", "-p", help="Label Studio project title.")


def _connect(url: str | None, retries: int):
    from curate.review import connect

    return connect(url, retries=retries)


@app.command()
@handle_errors
def push(
    table: Path = typer.Argument(..., help="Record table to review (.parquet or .jsonl)."),
    project: str = _PROJECT,
    batch_size: int = typer.Option(1000, min=1, max=1000, help="Tasks per import request (at most 1000)."),
    overlap: int = typer.Option(1, min=1, help="Annotators per task, for a new project (Label Studio's 'overlap')."),
    url: str = _URL,
    retries: int = _RETRIES,
) -> None:
    """Send a record table to a Label Studio project as tasks, the generated answer prefilled.

    Creates the project if needed. Records already in the project (by id) are skipped, so pushing
    again, or after an interrupted push, imports each record exactly once.
    """
    from curate.review import check_table, push_records

    df = read_table(table)
    check_table(df, str(table))
    conn = _connect(url, retries)
    with StepProgress() as progress:
        result = push_records(conn, df, project, batch_size=batch_size, overlap=overlap,
                              progress=progress.counter("pushing", df.height))
    summary = Table(title=f"push to '{project}' ({'created' if result.project.created else 'existing'} project "
                          f"{result.project.id})", show_header=False)
    summary.add_row("rows in table", str(result.rows))
    summary.add_row("tasks imported", f"{result.imported} in {result.batches} request(s), {result.seconds:.1f} s")
    for reason, n in sorted(result.skipped.items()):
        if n:
            summary.add_row(f"not imported: {reason}", str(n))
    if result.model_version:
        summary.add_row("prefilled model_version", result.model_version)
    console.print(summary)
    console.print(f"annotate at {conn.url}/projects/{result.project.id}/data", highlight=False)


@app.command()
@handle_errors
def pull(
    project: str = _PROJECT,
    out_path: Path = typer.Option(..., "--out", "-o", help="Where to write the reviewed records (.parquet or .jsonl)."),
    reviewed_only: bool = typer.Option(False, help="Write only records with a verdict."),
    hf_dataset: Path = HF_DATASET,
    license: str = LICENSE,
    url: str = _URL,
    retries: int = _RETRIES,
) -> None:
    """Export a project and write its records with their verdicts.

    status becomes accepted, rejected or edited; an edit replaces `output` and the original stays in
    review.original_output; review also holds annotator(s), time, agreement, rating and comment.
    Several annotators on one task: keep needs a strict majority (a tie rejects), the latest edit
    among keepers wins, agreement = share of annotators who voted with the outcome.
    """
    from curate.review import pull_records

    check_table_paths({"--out": out_path})
    conn = _connect(url, retries)
    with console.status(f"exporting '{project}' from {conn.url}"):
        df, stats = pull_records(conn, project)
    pulled = df.height
    if reviewed_only:
        df = df.filter(df["review"].is_not_null())
    write_table(df, out_path)
    if hf_dataset:
        drops = {"task_without_record_id": stats.skipped.get("task_without_record_id", 0),
                 "not_reviewed": pulled - df.height}
        export_hf(df, hf_dataset, stage="review", settings={"project": project, "reviewed_only": reviewed_only},
                  drops=drops, license=license)
    _print_stats(f"pull of '{project}' -> {out_path} ({df.height} records)", stats)


@app.command()
@handle_errors
def status(project: str = _PROJECT, url: str = _URL, retries: int = _RETRIES) -> None:
    """Totals of a project: tasks, annotated, accepted, rejected, edited, agreement."""
    from curate.review import review_status

    conn = _connect(url, retries)
    with console.status(f"reading '{project}' from {conn.url}"):
        stats = review_status(conn, project)
    _print_stats(f"review status of '{project}'", stats, to=out)


@app.command()
@handle_errors
def serve(
    port: int = typer.Option(8080, min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 to let others on the network in)."),
    data_dir: Path = typer.Option(Path(".seedloop") / "label-studio", help="Database, media and secret key."),
    username: str = typer.Option("admin@localhost", help="Email of the first (admin) user, on a new data dir."),
    label_studio: Path = typer.Option(None, "--label-studio",
                                      help="label-studio executable (else $SEEDLOOP_LABEL_STUDIO, PATH, "
                                           "./.venv-labelstudio/bin/label-studio)."),
) -> None:
    """Start a local Label Studio for annotators and print the steps to log in. Ctrl-C stops it.

    On a new data dir the admin password comes from $LABEL_STUDIO_PASSWORD, else it is asked for.
    """
    from curate.review import LocalLabelStudio

    server = LocalLabelStudio(data_dir, port=port, host=host, executable=label_studio)
    password = _admin_password() if server.is_new else None
    # the server runs in a session of its own and would outlive us: Ctrl-C and `kill PID` both stop it
    # (SIGINT explicitly too: a shell starting us in the background leaves it ignored)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    server.start(username=username, password=password)
    try:
        starting = f"starting Label Studio on {server.url}"
        if password:
            starting += " (the first start sets up the database: about a minute)"
        with console.status(starting) as spinner:
            server.wait_ready(on_wait=lambda s: spinner.update(f"{starting}: {s:.0f} s"))
        _print_login_steps(server.url, username, server.log_path)
        server.proc.wait()
        raise ConfigError(f"Label Studio stopped on its own; the end of {server.log_path}:\n{server.log_tail()}")
    except KeyboardInterrupt:
        console.print("stopping Label Studio")
    finally:
        server.stop()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _admin_password() -> str:
    password = os.environ.get("LABEL_STUDIO_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        raise ConfigError("a new Label Studio needs an admin password: set LABEL_STUDIO_PASSWORD")
    return typer.prompt("admin password for the new Label Studio (8+ characters)", hide_input=True,
                        confirmation_prompt=True)


def _print_login_steps(url: str, username: str, log: Path) -> None:
    console.print(f"""[bold green]Label Studio is up at {url}[/]  (log: {log})

1. Open {url} and log in as [bold]{username}[/] with the admin password.
2. Annotators: Organization > Add People gives an invite link; each signs up there with their own email.
3. For the seedloop commands, create a token: avatar menu > Account & Settings > Personal Access Token, then
     export LABEL_STUDIO_URL={url}
     export LABEL_STUDIO_API_KEY=<the token>      (keep it out of files and shell history you share)
4. seedloop review push curated.parquet --project NAME   then annotate in the project's Label All Tasks
5. seedloop review pull --project NAME --out reviewed.parquet

Press Ctrl-C to stop the server; the data stays in its data dir.""", highlight=False)


def _print_stats(title: str, stats, to=console) -> None:
    table = Table(title=title, show_header=False)
    table.add_row("tasks", str(stats.tasks))
    table.add_row("annotated (records with a verdict)", str(stats.reviewed))
    for verdict in ("accepted", "rejected", "edited"):
        table.add_row(verdict, str(stats.verdicts.get(verdict, 0)))
    table.add_row("not yet reviewed", str(max(stats.records - stats.reviewed, 0)))
    agreement = "n/a (no record has two annotators yet)" if stats.agreement is None else \
        f"{stats.agreement:.1%} over {stats.multi} record(s) with 2+ annotators"
    table.add_row("agreement", agreement)
    for reason, n in sorted(stats.skipped.items()):
        table.add_row(f"left out: {reason}", str(n))
    to.print(table)

