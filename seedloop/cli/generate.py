"""`seedloop generate` and `seedloop ledger`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from seedloop.cli.common import (
    ADAPTIVE,
    HF_DATASET,
    LICENSE,
    RAY_ADDRESS,
    RPM,
    SCHEMA,
    TPM,
    StepProgress,
    check_table_paths,
    console,
    default_cache,
    handle_errors,
    out,
)
from seedloop.cli.estimate import DRY_RUN, show_estimate
from seedloop.core.errors import ConfigError, InputError, TeacherError
from seedloop.core.tables import export_hf, write_table
from seedloop.executors import check_executor
from synth.cache import RequestCache
from synth.engine import Limits
from synth.generate import METHODS, run_generate
from synth.prices import PriceTable
from synth.seeds import load_seeds
from synth.teachers import make_teacher

TURNS = typer.Option(1, "--turns", min=1, help="Write conversations of this many user turns (as `messages`): the "
                     "teacher writes each next user message in the seeds' domain and persona, then answers it.")


@handle_errors
def generate(
    seeds: Path = typer.Option(..., "--seeds", help="Seed file (any format `seedloop seeds inspect` reads), or a "
                               "`datasets` folder (`Dataset.save_to_disk`)."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the records: .parquet or .jsonl."),
    n: int = typer.Option(100, "--n", min=1, help="How many new records to generate."),
    teacher: str = typer.Option("local", help="local | local:PATH | openai:MODEL | anthropic:MODEL."),
    method: str = typer.Option("self-instruct", help=f"{' | '.join(METHODS)}."),
    schema: Path = SCHEMA,   # an OutputSchema once its callback has read the file
    seed_format: str = typer.Option(None, "--format", help="Force the seed format instead of detecting it."),
    base_url: str = typer.Option(None, help="OpenAI-compatible server URL (else $OPENAI_BASE_URL)."),
    concurrency: int = typer.Option(8, min=1, help="Most requests in flight at once."),
    rpm: float = RPM,
    tpm: float = TPM,
    adaptive: bool = ADAPTIVE,
    max_retries: int = typer.Option(5, min=0, help="Retries of a failed request (429, 5xx, timeouts)."),
    max_cost: float = typer.Option(None, min=0, help="Stop before this job's spend (USD) would pass this."),
    prices: Path = typer.Option(None, help="YAML price table merged over the built-in one."),
    dry_run: bool = DRY_RUN,
    cache: Path = typer.Option(None, help="Request cache and ledger (default $SEEDLOOP_CACHE or "
                               ".seedloop/cache.sqlite)."),
    seed: int = typer.Option(0, min=0, help="Random seed: the same seed and settings give the same requests."),
    temperature: float = typer.Option(0.7, min=0, max=2, help="Teacher sampling temperature."),
    classify: str = typer.Option("auto", help="Self-Instruct: how classification tasks are spotted: "
                                 "auto (rule for local teachers, else teacher) | rule | teacher."),
    turns: int = TURNS,
    hf_dataset: Path = HF_DATASET,
    license: str = LICENSE,
    drops: Path = typer.Option(None, help="Also write the dropped candidates with their reasons (.parquet/.jsonl)."),
    executor: str = typer.Option("local", "--executor", help="local | ray: send the teacher requests from Ray "
                                 "workers (cache, ledger, budget and rate limits stay global, in this process)."),
    ray_address: str = RAY_ADDRESS,
) -> None:
    """Expand a seed file into new instruction data with a teacher model.

    Every request is cached: a killed run started again resumes without paying for anything twice. Rows record
    their teacher, prompt template and parent ids. A paid run prints its estimate first; --dry-run only that."""
    check_table_paths({"--out": out_path, "--drops": drops})
    check_executor(executor, ray_address)
    seed_df = load_seeds(seeds, seed_format)
    price_table = PriceTable.load(prices)
    teacher_obj = None if dry_run else _teacher(teacher, base_url, executor, ray_address)   # a dry run needs none
    show_estimate(seed_df, n=n, method=method, teacher=teacher, prices=price_table, cache=cache, dry_run=dry_run,
                  classify=classify, seed=seed, window=concurrency, turns=turns, max_cost=max_cost)
    if max_cost is not None:
        price_table.require(teacher_obj.spec)
    limits = Limits(concurrency=concurrency, rpm=rpm, tpm=tpm, max_retries=max_retries, adaptive=adaptive)
    options = {"temperature": temperature, **({"classify": classify} if method == "self-instruct" else {}),
               **({"turns": turns} if turns > 1 else {})}
    _run(seed_df, seeds, out_path, teacher_obj, n=n, teacher=teacher, method=method, limits=limits, schema=schema,
         cache=cache, prices=price_table, max_cost=max_cost, seed=seed, on_ray=executor == "ray", options=options,
         drops=drops, hf_dataset=hf_dataset, license=license)


def _run(seed_df, seeds: Path, out_path: Path, teacher_obj, *, n: int, teacher: str, method: str, limits: Limits,
         schema, cache: Path | None, prices: PriceTable, max_cost: float | None, seed: int, on_ray: bool,
         options: dict, drops: Path | None, hf_dataset: Path | None, license: str) -> None:
    """The generation itself, with progress bars; then the outputs and the summary."""
    console.print(f"[bold]seedloop generate[/] {len(seed_df)} seeds from {seeds} -> {n} records, "
                  f"teacher {teacher}, method {method}" + (f", on Ray ({teacher_obj!r})" if on_ray else ""),
                  highlight=False)
    with StepProgress() as progress:
        result = run_generate(seed_df, n=n, teacher=teacher_obj, cache=cache or default_cache(),
                              job=f"generate:{out_path.resolve()}", method=method, limits=limits, schema=schema,
                              prices=prices, max_cost=max_cost, seed=seed,
                              progress=progress.counter("generating", n), **options)
    settings = {"teacher": teacher, "method": method, "n": n, "seed": seed, **options,
                **({"max_cost_usd": max_cost} if max_cost is not None else {}), **(schema.setting if schema else {})}
    _write(result, out_path, drops=drops, hf_dataset=hf_dataset, settings=settings, license=license,
           sources=[seeds.name], max_cost=max_cost)


def _write(result, out_path: Path, *, drops: Path | None, hf_dataset: Path | None, settings: dict, license: str,
           sources: list[str], max_cost: float | None) -> None:
    """The records (and drops, and a datasets folder with its card), then the summary; nothing when empty."""
    _refuse_empty(result, max_cost)
    write_table(result.records, out_path)
    if drops:
        write_table(result.drops, drops)
    if hf_dataset:
        export_hf(result.records, hf_dataset, stage="generate", settings=settings, drops=result.drop_counts,
                  license=license, sources=sources)
    _summary(result, out_path)


def _teacher(spec: str, base_url: str | None, executor: str, ray_address: str | None):
    """The teacher, built now so that a missing key fails before any work (on Ray, on every worker)."""
    if executor == "ray":
        from seedloop.executors.ray_generate import RayTeacher

        return RayTeacher(spec, base_url=base_url, address=ray_address)
    return make_teacher(spec, base_url=base_url)


def _refuse_empty(result, max_cost: float | None) -> None:
    """A run that generated nothing writes nothing, so an existing --out is never truncated by it."""
    if result.records.height:
        return
    if result.stop_reason == "budget":
        raise ConfigError(f"--max-cost {max_cost:g} cannot pay for one request: {result.message}; nothing was "
                          "written")
    reasons = ", ".join(f"{reason} {count}" for reason, count in result.drop_counts.most_common(3))
    raise TeacherError(f"no records: {result.message}" + (f" (dropped: {reasons})" if reasons else "")
                       + "; nothing was written")


def _summary(result, out_path: Path) -> None:
    s = result.stats
    table = Table(title="generation", show_header=False)
    table.add_row("records written", f"{len(result.records)} -> {out_path}")
    table.add_row("slots run", str(result.slots))
    table.add_row("requests sent / cached / retried", f"{s.sent} / {s.cached} / {s.retries}")
    table.add_row("tokens in / out (this run)", f"{s.input_tokens} / {s.output_tokens}")
    if s.adaptive_rate:   # the server answered 429: the pace found for it (--rpm is this times 60)
        table.add_row("adaptive rate (from 429s)", f"{s.adaptive_rate:.1f} requests/s ({s.adaptive_rate * 60:.0f}/min)")
    table.add_row("cost this run / job total", f"${s.cost:.4f} / ${result.spent:.4f}")
    for reason, count in result.drop_counts.most_common():
        table.add_row(f"dropped: {reason}", str(count))
    console.print(table)
    if result.stop_reason == "budget":
        console.print(f"[yellow]stopped at the budget:[/] {result.message}")
    elif result.stop_reason == "exhausted":
        console.print(f"[yellow]fewer records than asked:[/] {result.message}")


@handle_errors
def ledger(
    cache: Path = typer.Option(None, help="Request cache (default $SEEDLOOP_CACHE or .seedloop/cache.sqlite)."),
    job: str = typer.Option(None, help="Only this job (e.g. 'generate:/abs/out.parquet')."),
) -> None:
    """Tokens and dollars spent, per teacher model (from the request cache)."""
    path = cache or default_cache()
    if not path.exists():
        raise InputError("no request cache here yet: run `seedloop generate` first, or pass --cache", file=str(path))
    store = RequestCache(path)
    rows = store.ledger(job)
    table = Table(title=f"ledger: {path}")
    for col in ("teacher", "requests", "input tokens", "output tokens", "cost (USD)"):
        table.add_column(col, justify="left" if col == "teacher" else "right")
    for r in rows:
        table.add_row(r.teacher, str(r.requests), str(r.input_tokens), str(r.output_tokens), f"{r.cost:.4f}")
    if rows:
        table.add_row("[bold]total", str(sum(r.requests for r in rows)), str(sum(r.input_tokens for r in rows)),
                      str(sum(r.output_tokens for r in rows)), f"[bold]{sum(r.cost for r in rows):.4f}")
    out.print(table)
    store.close()
