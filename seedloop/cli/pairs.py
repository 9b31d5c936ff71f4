"""`seedloop pairs`: preference pairs (prompt, chosen, rejected) from reviewed tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import polars as pl
import typer
from rich.table import Table

from seedloop.cli.common import HF_DATASET, LICENSE, check_table_paths, console, handle_errors
from seedloop.core.atomic import write_text
from seedloop.core.errors import InputError
from seedloop.core.tables import export_hf, read_table, write_table


@handle_errors
def pairs(
    reviewed: List[Path] = typer.Argument(..., help="Reviewed record tables (`seedloop review pull`, the loop's "
                                          "rounds/NNN/reviewed.parquet); several are read as one."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the pairs: .parquet or .jsonl."),
    trl: Path = typer.Option(None, "--trl", help="Also write TRL's conversational preference format (.jsonl): "
                             "prompt turns, chosen and rejected assistant turns."),
    hf_dataset: Path = HF_DATASET,
    min_gap: float = typer.Option(None, min=0, help="Also pair judged answers to one prompt: the best against the "
                                  "worst when their judge scores (1-5) differ by this much or more."),
    license: str = LICENSE,
) -> None:
    """Preference pairs from review: an edit (chosen) against the answer it replaced (rejected); a
    rejected answer against an accepted or edited answer to the same prompt in any of the tables; and,
    with --min-gap, the judge's best answer to a prompt against its worst.

    Each pair keeps its lineage: the prompt's id, the rows its answers came from, the reviewer and
    the round. Train on them with `seedloop train --objective dpo --data PAIRS`.
    """
    from curate.pairs import build_pairs, trl_rows

    check_table_paths({"--out": out_path})
    if trl is not None and trl.suffix.lower() != ".jsonl":
        raise InputError("--trl must end in .jsonl", file=str(trl))
    table = pl.concat([read_table(p) for p in reviewed], how="diagonal_relaxed")
    found, counts = build_pairs(table, min_gap=min_gap)
    write_table(found, out_path)
    if trl is not None:
        write_text(trl, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in trl_rows(found)))
    if hf_dataset is not None:
        skipped = {k.removeprefix("skipped_"): v for k, v in counts.items() if k.startswith("skipped_")}
        export_hf(found, hf_dataset, stage="pairs", license=license, sources=[str(p) for p in reviewed],
                  settings={"min_gap": min_gap}, drops=skipped)
    _summary(found.height, counts, out_path)


def _summary(n: int, counts: dict, out_path: Path) -> None:
    summary = Table(title=f"pairs -> {out_path} ({n} pairs)", show_header=False)
    for key, value in sorted(counts.items(), key=lambda kv: (kv[0].startswith("skipped"), kv[0])):
        summary.add_row(key.replace("_", " "), str(value))
    console.print(summary)
    if n == 0:
        console.print("[yellow]no pairs:[/] they come from edited rows (with review.original_output), rejected rows "
                      "whose prompt has an accepted answer in the tables given, or judged answers with --min-gap",
                      highlight=False)
