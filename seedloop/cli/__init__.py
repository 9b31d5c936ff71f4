"""The `seedloop` command. Each command group lives in its own module."""

from __future__ import annotations

import typer

from seedloop import __version__
from seedloop.cli import curate as _curate
from seedloop.cli import doctor as _doctor
from seedloop.cli import generate as _generate
from seedloop.cli import loop as _loop
from seedloop.cli import pairs as _pairs
from seedloop.cli import review as _review
from seedloop.cli import seeds as _seeds
from seedloop.cli import select as _select
from seedloop.cli import train as _train

app = typer.Typer(name="seedloop", no_args_is_help=True, add_completion=False,
                  help="Turn a handful of seed examples into a specialist model.")
app.add_typer(_seeds.app, name="seeds")
app.add_typer(_review.app, name="review")
app.command("generate")(_generate.generate)
app.command("ledger")(_generate.ledger)
app.command("curate")(_curate.curate)
app.command("pairs")(_pairs.pairs)
app.command("train")(_train.train)
app.command("evaluate")(_train.evaluate)
app.command("predict")(_train.predict)
app.command("serve")(_train.serve)
app.command("export")(_train.export)
app.command("select")(_select.select)
app.command("simulate")(_select.simulate)
app.command("init")(_loop.init)
app.command("cycle")(_loop.cycle)
app.command("status")(_loop.status)
app.command("watch")(_loop.watch)
app.command("doctor")(_doctor.doctor)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()
