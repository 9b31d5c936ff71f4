"""`seedloop curate`: a noisy generated set in, a clean one out, and why each row left."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.table import Table

from curate.semantic_dedup import EXACT_MAX_ROWS
from seedloop.cli.common import (
    HF_DATASET,
    LICENSE,
    RAY_ADDRESS,
    StepProgress,
    check_table_paths,
    console,
    default_cache,
    handle_errors,
)
from seedloop.executors import check_executor


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
    against_threshold: float = typer.Option(0.95, help="Decontamination: cosine at or above which a row is too close."),
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
    hf_dataset: Path = HF_DATASET,
    license: str = LICENSE,
    executor: str = typer.Option("local", "--executor", help="local | ray: compute the embeddings the cache lacks "
                                 "on Ray workers (the neighbour search stays in this process)."),
    ray_address: str = RAY_ADDRESS,
) -> None:
    """Clean a generated set: exact, near-exact and semantic dedup, decontamination, an optional LLM
    judge and diversity selection.

    Every dropped row says which rule dropped it; duplicates name the row they duplicate
    (scores.dup_of) and how close they are (scores.similarity). Embeddings and judge answers are
    cached, so a re-run (or a run on a grown table) only pays for new rows.
    """
    check_table_paths({"--out": out_path, "--drops": drops})
    from curate import curate_file
    with StepProgress() as progress:
        result = curate_file(table, out_path, drops=drops, report=report, hf_dataset=hf_dataset, license=license,
                             cache=cache or default_cache(), threshold=threshold, keep=keep, on=on,
                             heuristics=heuristics, against=against, against_format=against_format,
                             against_threshold=against_threshold, ngram=ngram, judge=judge, base_url=base_url,
                             concurrency=concurrency, max_cost=max_cost, min_score=min_score, select=select,
                             select_by=select_by, model=model, embed_cache=embed_cache, index=index, say=_say,
                             neighbours=neighbours, make_embedder=_embedder(executor, ray_address), progress=progress)
    _summary(result, out_path, drops, report)


def _say(line: str) -> None:
    console.print(f"[bold]seedloop curate[/] {line}", highlight=False)


def _embedder(executor: str, ray_address: str | None):
    """curate_file's make_embedder(model, cache=), the executor checked now (a missing Ray extra fails
    before any work): the vectors the cache lacks are computed here, or on Ray workers with --executor ray
    (the cache and the neighbour search stay in this process)."""
    check_executor(executor, ray_address)
    if executor != "ray":
        from curate import Embedder
        return Embedder

    def on_ray(model: str | None, *, cache: Path):
        from seedloop.executors.ray_data import ray_embedder
        return ray_embedder(model, cache=cache, address=ray_address)
    return on_ray


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
