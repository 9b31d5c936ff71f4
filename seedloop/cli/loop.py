"""`seedloop init`, `seedloop cycle`, `seedloop status` and `seedloop watch`: the workspace loop."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from seedloop.cli.common import console, handle_errors, more_than, out, quiet_libraries
from seedloop.core.errors import ConfigError


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _parse_overrides(items: list[str] | None) -> dict:
    import yaml

    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--train-set expects key=value, found {item!r}")
        result[key] = yaml.safe_load(value)
    return result


@handle_errors
def init(
    folder: Path = typer.Argument(..., help="The workspace folder to create."),
    seeds: Path = typer.Option(..., "--seeds", help="Seed file (any format `seedloop seeds inspect` reads)."),
    pool: Path = typer.Option(None, "--pool", help="A pool to curate in round 0 instead of generating one (any seed-"
                              "file format; outputs, if any, are only for the automatic reviewer unless "
                              "train.unreviewed is include)."),
    eval_file: Path = typer.Option(None, "--eval", help="The evaluation table (rows with outputs), instead of a "
                                   "hash-chosen share of the seeds."),
    teacher: str = typer.Option("local", help="local | local:PATH | openai:MODEL | anthropic:MODEL."),
    n: int = typer.Option(60, "--n", min=1, help="Records the teacher generates for the pool in round 0."),
    project: str = typer.Option(None, "--project", help="Label Studio project (else selections are only written)."),
    auto_review: bool = typer.Option(False, "--auto-review", help="Let the automatic reviewer stand in for "
                                     "annotators (see README)."),
    task: str = typer.Option("auto", "--task", help="auto | classification | generation (auto: a classifier when "
                             "the outputs are labels)."),
    student: str = typer.Option("auto", help="Student base: auto (minilm for classifiers, local for generators), "
                                "local (packaged SmolLM2-135M-Instruct), minilm, or a model folder."),
    k: int = typer.Option(12, "--k", min=1, help="Items sent to annotators each round."),
    train_config: str = typer.Option("auto", "--train-config", help="auto | qlora | lora | smoke | classifier | "
                                     "PATH.yaml."),
    train_set: list[str] = typer.Option(None, "--train-set", help="Trainer setting as key=value (repeatable), "
                                        "e.g. --train-set max_steps=8."),
    unreviewed: str = typer.Option("include", "--unreviewed", help="include | exclude: train on pool rows no "
                                   "reviewer has decided on yet, or not."),
    force: bool = typer.Option(False, help="Overwrite the config of an existing workspace."),
) -> None:
    """Create a workspace: seedloop.yaml, the seed file, and a fixed evaluation split never trained on."""
    from seedloop.loop.init import init_workspace

    ws = init_workspace(folder, seeds, pool=pool, evals=eval_file, force=force, teacher=teacher, n=n,
                        project=project, auto=auto_review, task=task, student=student, train_config=train_config,
                        overrides=_parse_overrides(train_set), unreviewed=unreviewed, k=k)
    import polars as pl

    n_eval = pl.read_parquet(ws.eval_path).height
    n_train = pl.read_parquet(ws.root / "seeds_train.parquet").height
    held = f"{n_eval} evaluation rows from {eval_file.name}" if eval_file else f"{n_eval} held out"
    console.print(f"[bold]workspace[/] {ws.root}: {n_train} training seeds, {held} in {ws.eval_path.name}"
                  + (f", pool from {pool.name}" if pool else "")
                  + f"; edit {ws.config_path.name}, then run `seedloop cycle {ws.root}`", highlight=False)


@handle_errors
def cycle(
    folder: Path = typer.Argument(Path("."), help="The workspace (default: here)."),
    until: int = typer.Option(None, "--until", min=1, help="Run cycles until this round is done (none if it already "
                              "is): a re-run after a crash converges instead of adding rounds."),
) -> None:
    """Run the next round: pull labels, build the training set, train (warm start), evaluate and
    promote, score the pool, select and push. Re-run after a crash: finished steps are skipped."""
    from seedloop.loop import run_cycle
    from seedloop.loop.cycle import finished_rounds
    from seedloop.loop.workspace import open_workspace

    ws = open_workspace(folder)
    _quiet()
    while until is None or max(finished_rounds(ws), default=0) < until:
        start = time.perf_counter()
        data = run_cycle(ws, say=_say)
        _say(f"round {data['round']} done in {time.perf_counter() - start:.1f} s -> {ws.round_dir(data['round'])}")
        if until is None:
            break
    _where(ws)


@handle_errors
def status(
    folder: Path = typer.Argument(Path("."), help="The workspace (default: here)."),
    plot: Path = typer.Option(None, help="Where to write the PNG plot (default: WORKSPACE/status.png)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON instead of a table."),
) -> None:
    """Rounds, labels gained, metric per round (table and PNG), the promoted adapter, spend."""
    from seedloop.loop.status import current_adapter, metric_name, plot as draw, pool_info, round_rows, spend
    from seedloop.loop.workspace import load_config, open_workspace

    ws = open_workspace(folder)
    rows = round_rows(ws)
    metric = metric_name(rows, load_config(ws))
    second = "macro_f1" if any(r["task"] == "classification" for r in rows) else "rouge_l"
    requests, usd = spend(ws)
    adapter = current_adapter(ws)
    png = draw(rows, metric, plot or ws.root / "status.png")
    if as_json:
        out.print_json(json.dumps({"rounds": rows, "pool": pool_info(ws), "promoted_adapter": str(adapter) if adapter
                                   else None, "requests": requests, "cost_usd": usd, "plot": str(png) if png else None}))
        return
    # one space between columns and headers that wrap rather than truncate: it reads in 80 columns
    table = Table(title=f"seedloop status: {ws.root}", box=box.SIMPLE_HEAD, padding=0,
                  pad_edge=False)
    for col in ("round", "status", "labels", "+new", "rows", metric, second, "promoted", "picked", "pushed", "s"):
        table.add_column(col, justify="right", overflow="fold")
    for r in rows:
        table.add_row(*[_cell(r[k]) for k in ("round", "status", "labels", "gained", "train_rows", "metric", second,
                                              "promoted", "selected", "pushed")],
                      _cell(round(r["seconds"]) if r["seconds"] is not None else None))
    out.print(table)
    info = pool_info(ws)
    made = f"{info['given']} given" if info["given"] is not None else f"{info['generated']} generated"
    out.print(f"pool: {made}, {info['pool']} kept after curation" if info["pool"] is not None
              else "pool: not built yet (the first `seedloop cycle` builds it)", highlight=False)
    out.print(f"promoted adapter: {adapter or 'none yet'}", highlight=False)
    out.print(f"teacher spend (ledger): {requests} requests, ${usd:.4f}", highlight=False)
    if png:
        out.print(f"plot: {png}", highlight=False)


@handle_errors
def watch(
    folder: Path = typer.Argument(Path("."), help="The workspace (default: here)."),
    every: int = typer.Option(..., "--every", min=1, help="Run a cycle once this many new annotations exist."),
    interval: float = typer.Option(30.0, callback=more_than(0), help="Seconds between polls of Label Studio."),
    once: bool = typer.Option(False, help="Exit after one cycle."),
) -> None:
    """Poll Label Studio; when EVERY new annotations exist (beyond those the last round used), run a cycle."""
    from curate.review import UnknownProject, review_status
    from seedloop.loop import run_cycle
    from seedloop.loop.cycle import labels_before
    from seedloop.loop.steps import label_studio
    from seedloop.loop.workspace import load_config, open_workspace

    ws = open_workspace(folder)
    project, conn = label_studio(load_config(ws))
    if conn is None:
        raise ConfigError(f"{ws.config_path}: 'label_studio.project' is not set: watch polls a Label Studio project")
    _quiet()
    while True:
        used = labels_before(ws, 10**9)
        try:
            reviewed = review_status(conn, project).reviewed
        except UnknownProject:   # nothing pushed yet: the first cycle creates the project
            reviewed = 0
        if reviewed - used >= every:
            _say(f"{reviewed - used} new annotations (>= {every}): running a cycle")
            data = run_cycle(ws, say=_say)
            _say(f"round {data['round']} done")
            if once:
                return
            continue
        _say(f"{reviewed - used} new annotations of {every}; next poll in {interval:g} s")
        time.sleep(interval)


def _where(ws) -> None:
    from seedloop.loop.status import current_adapter

    n = max(ws.round_numbers())
    adapter = current_adapter(ws)
    out.print(f"dataset: {ws.round_dir(n) / 'train.parquet'} (pool: {ws.round_dir(0) / 'pool.parquet'})",
              highlight=False)
    out.print(f"report: {ws.round_dir(n) / 'manifest.json'} (`seedloop status {ws.root}` for the table and plot)",
              highlight=False)
    out.print(f"adapter: {adapter or 'none promoted yet'}", highlight=False)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _quiet() -> None:
    try:
        quiet_libraries()
    except ImportError:
        pass
