"""`seedloop curate`'s work as one library call: a record table file in; the kept rows, the drops,
a Hugging Face dataset folder and the HTML report out.

curate_table (curate/pipeline.py) does the curation itself; this module checks the options before
anything slow starts, reads the inputs, builds the judge and the embedder, and writes the outputs.
Nothing is written unless curation finished. How the embeddings are computed (here, or on Ray) is
the caller's choice, through `make_embedder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from curate.diversity import STRATEGIES
from curate.embed import Embedder
from curate.keep import POLICIES
from curate.pipeline import Against, CurateResult, Progress, curate_table
from curate.report import write_report
from curate.rows import FIELDS, row_text
from curate.semantic_dedup import check_threshold
from seedloop.core.errors import ConfigError, InputError
from seedloop.core.tables import export_hf, read_table, write_table

INDEXES = ("auto", "flat", "ivf")


def curate_file(table: str | Path, out: str | Path, *, drops: Path | None = None, report: Path | None = None,
                hf_dataset: Path | None = None, cache: str | Path, threshold: float = 0.95, keep: str = "seed-first",
                on: str = "prompt", heuristics: bool = True, against: Sequence[Path] | None = (),
                against_format: str | None = None, against_threshold: float = 0.95, ngram: int = 13,
                judge: str | None = None, base_url: str | None = None, concurrency: int = 8,
                max_cost: float | None = None, min_score: float | None = None, select: int | None = None,
                select_by: str | None = None, model: str | None = None, embed_cache: Path | None = None,
                index: str = "auto", neighbours: int = 10, make_embedder: Callable[..., Embedder] = Embedder,
                say: Callable[[str], None] | None = None, progress: Progress | None = None,
                license: str | None = None) -> CurateResult:
    """Curate the table at `table` and write the kept rows to `out` (and the drops, the dataset folder
    with its card under `license`, and the report where given). `cache` is the judge's request cache and
    ledger; the embeddings are cached in `embed_cache`, by default embeddings.sqlite next to it.
    `make_embedder(model, cache=)` builds the embedder; `say` gets one line about the run before the
    slow steps start."""
    table, out, cache = Path(table), Path(out), Path(cache)
    select_by = select_by or ("score" if judge else "diversity")
    _check_options(threshold=threshold, against_threshold=against_threshold, min_score=min_score, report=report,
                   keep=keep, on=on, select_by=select_by, index=index, judge=judge)
    df = read_table(table)
    against_rows = _load_against(against or (), against_format, on)
    judge_fn = _judge_with(judge, cache, out, base_url, concurrency, max_cost) if judge else None
    embedder = make_embedder(model, cache=embed_cache or cache.parent / "embeddings.sqlite")
    if say:
        say(f"{df.height} rows from {table}; threshold {threshold}, keep {keep}"
            + (f", judge {judge}" if judge else ""))
    try:
        result = curate_table(df, embedder, threshold=threshold, keep=keep, on=on, heuristics=heuristics,
                              against=against_rows, against_threshold=against_threshold, ngram=ngram,
                              judge=judge_fn, min_score=min_score, select=select, select_by=select_by,
                              index=index, k=neighbours, where=str(table), progress=progress)
    finally:
        embedder.close()
    write_table(result.kept, out)
    if drops:
        write_table(result.drops, drops)
    if hf_dataset:
        settings = _card_settings(result, on=on, threshold=threshold, keep=keep, heuristics=heuristics,
                                  model=embedder.model_key, against=bool(against), against_threshold=against_threshold,
                                  ngram=ngram, judge=judge, min_score=min_score, select=select, select_by=select_by)
        export_hf(result.kept, hf_dataset, stage="curate", settings=settings, drops=result.drops,
                  decontamination=[Path(p).name for p in against or ()], license=license, sources=[table.name])
    if report:
        _write_report(report, result, df, table=table, on=on, threshold=threshold, keep=keep,
                      model=embedder.model_key, against=against_rows, min_score=min_score)
    return result


def _check_options(*, threshold: float, against_threshold: float, min_score: float | None, report: Path | None,
                  keep: str, on: str, select_by: str, index: str, judge: str | None) -> None:
    """Every option checked before anything slow starts (model loading, embedding, judging); plain
    numeric ranges are checked by the command line as the options are parsed."""
    _check_choice("--keep", keep, POLICIES)
    _check_choice("--on", on, FIELDS)
    _check_choice("--select-by", select_by, STRATEGIES)
    _check_choice("--index", index, INDEXES)
    for option, needs in (("--min-score", min_score is not None), ("--keep score", keep == "score"),
                          ("--select-by score", select_by == "score")):
        if needs and not judge:
            raise ConfigError(f"{option} needs judge scores: add --judge TEACHER (e.g. --judge local)")
    check_threshold(threshold)
    check_threshold(against_threshold, "--against-threshold")
    if report is not None and Path(report).suffix.lower() not in (".html", ".htm"):
        raise InputError("--report must end in .html", file=str(report))


def _check_choice(option: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)}, got '{value}'")


def _load_against(files: Sequence[Path], fmt: str | None, on: str) -> Against:
    """Every --against file through the seed reader (any seed format), as one list of rows."""
    from synth import load_seeds

    return Against.from_tables([(path.name, load_seeds(path, fmt)) for path in files], on)


def _judge_with(judge: str, cache: Path, out: Path, base_url: str | None, concurrency: int,
               max_cost: float | None):
    """The judge, with its teacher built now: a bad spec or a missing key fails before any embedding."""
    from curate.judge import judge_rows
    from synth import Limits, make_teacher

    teacher = make_teacher(judge, base_url=base_url)
    return lambda rows, progress=None: judge_rows(
        rows, teacher=teacher, cache=cache, job=f"curate:{out.resolve()}",
        limits=Limits(concurrency=concurrency), max_cost=max_cost, progress=progress)


def _card_settings(result: CurateResult, *, against: bool, judge: str | None, select: int | None,
                   select_by: str, against_threshold: float, ngram: int, min_score: float | None,
                   **always) -> dict:
    """The settings that shaped the kept rows, for the dataset card: the ones of steps that ran."""
    settings = {**always, "index": result.index}
    if against:
        settings.update(against_threshold=against_threshold, ngram=ngram)
    if judge:
        template = result.verdicts.template if result.verdicts else None
        settings.update(judge=judge, judge_template=template, min_score=min_score)
    if select is not None:
        settings.update(select=select, select_by=select_by)
    return settings


def _write_report(path: Path, result: CurateResult, df, *, table: Path, on: str, threshold: float, keep: str,
                  model: str, against: Against, min_score: float | None) -> None:
    texts = [row_text(r["instruction"], r["input"], r["output"], on)
             for r in df.select("instruction", "input", "output").iter_rows(named=True)]
    settings = [f"input {table}", f"compared text: {on}", f"model {model}",
                f"threshold {threshold}", f"index {result.index}", f"keep {keep}",
                f"embeddings computed {result.encoded}, from cache {result.cached}"]
    if result.verdicts is not None:
        settings.append(f"judge {result.verdicts.teacher} with {result.verdicts.template}")
    write_report(path, result, texts, title=table.name, settings=settings, min_score=min_score,
                 eval_text=dict(zip(against.ids, against.texts)))
