"""`seedloop curate`: a noisy generated set in, a clean one out, and why each row left."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from curate.semantic_dedup import EXACT_MAX_ROWS
from seedloop.cli.common import console, default_cache, handle_errors
from seedloop.core.errors import ConfigError, InputError
from seedloop.executors import check_executor
from seedloop.core.tables import TABLE_SUFFIXES, export_hf, read_table, write_table


def _check_suffix(path: Path | None, option: str) -> None:
    if path is not None and path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"{option} must end in .parquet or .jsonl", file=str(path))


def _check_choice(option: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)}, got '{value}'")


def _check_options(threshold: float, against_threshold: float, min_score: float | None, report: Path | None,
                   keep: str, on: str, select_by: str, index: str, judge: str | None) -> None:
    """Every option checked before anything slow starts (model loading, embedding, judging); plain
    numeric ranges are checked by typer as the options are parsed."""
    from curate.keep import POLICIES
    from curate.rows import FIELDS
    from curate.diversity import STRATEGIES
    from curate.semantic_dedup import check_threshold

    _check_choice("--keep", keep, POLICIES)
    _check_choice("--on", on, FIELDS)
    _check_choice("--select-by", select_by, STRATEGIES)
    _check_choice("--index", index, ("auto", "flat", "ivf"))
    for option, needs in (("--min-score", min_score is not None), ("--keep score", keep == "score"),
                          ("--select-by score", select_by == "score")):
        if needs and not judge:
            raise ConfigError(f"{option} needs judge scores: add --judge TEACHER (e.g. --judge local)")
    check_threshold(threshold)
    check_threshold(against_threshold, "--against-threshold")
    if report is not None and report.suffix.lower() not in (".html", ".htm"):
        raise InputError("--report must end in .html", file=str(report))


def _load_against(files: list[Path], fmt: str | None, on: str):
    """Every --against file through the seed reader (any seed format), as one list of rows."""
    from curate.pipeline import Against
    from synth import load_seeds

    return Against.from_tables([(path.name, load_seeds(path, fmt)) for path in files], on)


@handle_errors
def curate(
    table: Path = typer.Argument(..., help="Record table to curate (.parquet or .jsonl), e.g. the output of "
                                 "`seedloop generate`."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the kept rows: .parquet or .jsonl."),
    drops: Path = typer.Option(None, help="Also write the dropped rows with `reason` and `detail` columns."),
    report: Path = typer.Option(None, help="Write a self-contained HTML report here."),
    threshold: float = typer.Option(0.95, help="Semantic dedup: cosine similarity at or above which rows are "
                                    "duplicates (the report's curve shows what other values would remove)."),
    keep: str = typer.Option("seed-first", help="Which row of a duplicate group stays: seed-first | score."),
    on: str = typer.Option("prompt", help="Text compared: prompt (instruction + input) | output | all."),
    against: List[Path] = typer.Option(None, help="Evaluation/test file to decontaminate against (any seed format); "
                                       "repeat the option for several files."),
    against_format: str = typer.Option(None, help="Force the seed format of the --against files."),
    against_threshold: float = typer.Option(0.95, help="Decontamination: cosine at or above which a row is too "
                                            "close."),
    ngram: int = typer.Option(13, min=2, help="Decontamination: word n-gram length that counts as a copied passage "
                              "(13, as GPT-3's; shorter evaluation rows match only when contained whole)."),
    judge: str = typer.Option(None, help="Score rows with an LLM judge: local | local:PATH | openai:MODEL | "
                              "anthropic:MODEL. Costs one request per row (cached)."),
    min_score: float = typer.Option(None, min=1, max=5, help="Drop rows the judge scored below this (1-5)."),
    base_url: str = typer.Option(None, help="OpenAI-compatible server URL for the judge (else $OPENAI_BASE_URL)."),
    concurrency: int = typer.Option(8, min=1, help="Judge requests in flight at once."),
    max_cost: float = typer.Option(None, min=0, help="Stop before the judge's spend (USD) would pass this."),
    select: int = typer.Option(None, min=1, help="Keep only K rows, chosen for diversity."),
    select_by: str = typer.Option(None, help="diversity (k-center greedy) | score (score-then-diversity, as DEITA; "
                                  "needs --judge). Default: score when judged, else diversity."),
    model: str = typer.Option(None, help="Sentence-transformers model name or folder (default: the packaged "
                              "all-MiniLM-L6-v2)."),
    embed_cache: Path = typer.Option(None, help="Embedding cache (default: embeddings.sqlite next to the request "
                                     "cache)."),
    cache: Path = typer.Option(None, help="Request cache and ledger for the judge (default $SEEDLOOP_CACHE or "
                               ".seedloop/cache.sqlite)."),
    index: str = typer.Option("auto", help=f"Neighbour index: auto (exact up to {EXACT_MAX_ROWS:,} rows, IVF above) "
                              "| flat | ivf."),
    neighbours: int = typer.Option(10, min=1, help="Neighbours searched per row for the duplicate graph."),
    heuristics: bool = typer.Option(True, help="Apply the quality rules shared with generation (refusals, "
                                    "empty/long output, copied instruction)."),
    hf_dataset: Path = typer.Option(None, help="Also save the kept rows as a Hugging Face `datasets` folder."),
    executor: str = typer.Option("local", "--executor", help="local | ray: compute the embeddings the cache lacks "
                                 "on Ray workers (the neighbour search stays in this process)."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to use with --executor ray (else "
                                    "$RAY_ADDRESS; with neither, Ray starts on this machine)."),
) -> None:
    """Clean a generated set: exact, near-exact and semantic dedup, decontamination, an optional LLM
    judge and diversity selection.

    Every dropped row says which rule dropped it; duplicates name the row they duplicate
    (scores.dup_of) and how close they are (scores.similarity). Embeddings and judge answers are
    cached, so a re-run (or a run on a grown table) only pays for new rows.
    """
    _check_suffix(out_path, "--out")
    _check_suffix(drops, "--drops")
    select_by = select_by or ("score" if judge else "diversity")
    check_executor(executor, ray_address)
    _check_options(threshold, against_threshold, min_score, report, keep, on, select_by, index, judge)
    df = read_table(table)
    from curate.embed import Embedder
    from curate.pipeline import curate_table as run_curate

    against_rows = _load_against(against or [], against_format, on)
    request_cache = cache or default_cache()
    judge_fn = _judge_fn(judge, request_cache, out_path, base_url, concurrency, max_cost) if judge else None
    embed_path = embed_cache or request_cache.parent / "embeddings.sqlite"
    if executor == "ray":
        from seedloop.executors.ray_data import ray_embedder

        embedder = ray_embedder(model, cache=embed_path, address=ray_address)
    else:
        embedder = Embedder(model, cache=embed_path)
    console.print(f"[bold]seedloop curate[/] {df.height} rows from {table}; threshold {threshold}, keep {keep}"
                  + (f", judge {judge}" if judge else ""), highlight=False)
    try:
        with _progress() as bar:
            result = run_curate(df, embedder, threshold=threshold, keep=keep, on=on, heuristics=heuristics,
                                against=against_rows, against_threshold=against_threshold, ngram=ngram,
                                judge=judge_fn, min_score=min_score, select=select, select_by=select_by,
                                index=index, k=neighbours, where=str(table), progress=bar)
    finally:
        embedder.close()
    write_table(result.kept, out_path)
    if drops:
        write_table(result.drops, drops)
    if hf_dataset:
        export_hf(result.kept, hf_dataset)
    if report:
        _write_report(report, result, df, on, against_rows, table, threshold, keep, embedder, min_score)
    _summary(result, out_path, drops, report)


def _judge_fn(judge: str, cache: Path, out_path: Path, base_url, concurrency: int, max_cost):
    """The judge, with its teacher built now: a bad spec or a missing key fails before any embedding."""
    from curate.judge import judge_rows
    from synth import Limits, make_teacher

    teacher = make_teacher(judge, base_url=base_url)
    return lambda rows, progress=None: judge_rows(
        rows, teacher=teacher, cache=cache, job=f"curate:{out_path.resolve()}",
        limits=Limits(concurrency=concurrency), max_cost=max_cost, progress=progress)


class _progress:
    """A rich progress display with one bar per step, fed by the pipeline's (step, done, total) calls."""

    def __enter__(self):
        self.bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        self.bar.__enter__()
        self.tasks: dict[str, int] = {}
        return self

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total)
        self.bar.update(self.tasks[step], completed=done, total=total)

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)


def _write_report(path: Path, result, df, on: str, against_rows, table: Path, threshold: float, keep: str,
                  embedder, min_score) -> None:
    from curate.report import write_report
    from curate.rows import row_text

    texts = [row_text(r["instruction"], r["input"], r["output"], on)
             for r in df.select("instruction", "input", "output").iter_rows(named=True)]
    settings = [f"input {table}", f"compared text: {on}", f"model {embedder.model_key}",
                f"threshold {threshold}", f"index {result.index}", f"keep {keep}",
                f"embeddings computed {result.encoded}, from cache {result.cached}"]
    if result.verdicts is not None:
        settings.append(f"judge {result.verdicts.teacher} with {result.verdicts.template}")
    write_report(path, result, texts, title=table.name, settings=settings, min_score=min_score,
                 eval_text=dict(zip(against_rows.ids, against_rows.texts)))


def _summary(result, out_path: Path, drops: Path | None, report: Path | None) -> None:
    t = Table(title="curation", show_header=False)
    t.add_row("rows kept", f"{result.kept.height} -> {out_path}")
    for name, rin, rout in result.steps:
        t.add_row(f"step: {name}", f"{rin} -> {rout}")
    for reason, count in result.counts.most_common():
        t.add_row(f"dropped: {reason}", str(count))
    t.add_row("embeddings computed / cached", f"{result.encoded} / {result.cached}")
    t.add_row("neighbour index", result.index)
    v = result.verdicts
    if v is not None:
        t.add_row("judge requests sent / cached", f"{v.stats.get('sent', 0)} / {v.stats.get('cached', 0)}")
        t.add_row("judge answers without a score", str(v.unparseable))
    if drops:
        t.add_row("dropped rows", str(drops))
    if report:
        t.add_row("report", str(report))
    console.print(t)
    curve = "  ".join(f"{th:.2f}:{100 * f:.1f}%" for th, f in result.curve[::2])
    console.print(f"[bold]fraction removed vs threshold[/] {curve}", highlight=False)
