"""The estimate `generate` prints before a paid run, and all that `generate --dry-run` does."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer
from rich.markup import escape
from rich.table import Table

from seedloop.cli.common import console, default_cache, out
from synth.cache import RequestCache
from synth.estimate import Estimate, estimate_run, teacher_spec
from synth.prices import PriceTable

DRY_RUN = typer.Option(False, "--dry-run", help="Print what the run would use (requests, prompt and completion "
                       "tokens, dollars; low to high, from the seeds, the method, --n, the yield measured by earlier "
                       "runs in the cache and the prices) and exit, sending nothing and writing nothing.")


def show_estimate(seed_df: pl.DataFrame, *, n: int, method: str, teacher: str, prices: PriceTable,
                  cache: Path | None, dry_run: bool, **options) -> None:
    """With --dry-run: the estimate on stdout, then exit 0. Else, for a teacher with a price, the same on
    stderr before the run starts. `options`: classify, seed, window, turns, max_cost (see estimate_run)."""
    price = prices.get(teacher_spec(teacher))
    if not (dry_run or (price and (price.input or price.output))):
        return
    path = cache or default_cache()
    store = RequestCache(path) if path.is_file() else None   # a dry run leaves no cache behind
    try:
        est = estimate_run(seed_df, method, n, teacher, prices, store, **options)
    finally:
        if store is not None:
            store.close()
    print_estimate(est, title=f"estimate: {n} records, {method}, {teacher}", to=out if dry_run else console)
    if dry_run:
        raise typer.Exit(0)   # the estimate is all a dry run does


def print_estimate(est: Estimate, *, title: str, to=console) -> None:
    table = Table()
    for col in ("", "low", "high"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("requests", f"{est.requests_low:,}", f"{est.requests_high:,}")
    table.add_row("prompt tokens", f"{est.prompt_tokens_low:,}", f"{est.prompt_tokens_high:,}")
    table.add_row("completion tokens", f"{est.completion_tokens_low:,}", f"{est.completion_tokens_high:,}")
    table.add_row("dollars", _usd(est.dollars_low), _usd(est.dollars_high))
    to.print(f"[bold]{escape(title)}[/]", highlight=False, soft_wrap=True)
    to.print(table)
    to.print(f"basis: {escape(est.basis)}", highlight=False, soft_wrap=True)
    for note in est.notes:
        to.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    return f"${value:,.4f}" if value < 100 else f"${value:,.0f}"
