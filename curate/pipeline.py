"""The curate stage: steps chained in order, every drop counted by reason and kept aside.

  1 heuristics   refusals, empty / too long outputs, copied instructions (shared with generation;
                 seed rows are the user's own and are never dropped by them)
  2 exact        same text up to case, whitespace and punctuation
     (the rows left are embedded here, through the cache)
  3 near-exact   one word-level edit apart (typo, word added/dropped/swapped)
  4 decontam     too close to a row of an --against file (n-gram, one edit, embedding)
  5 semantic     faiss neighbour graph, components at cosine >= threshold
  6 judge        LLM score 1-5 and --min-score (judged before step 2 when the keep policy is "score")
  7 select       K rows by k-center greedy or score-then-diversity

Each step sees only the rows the earlier steps kept. Cheap steps run first so that embedding and
judging pay for as few rows as possible.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import polars as pl

from curate import decontaminate, edit_dedup, exact_dedup, semantic_dedup
from curate.diversity import select_diverse as select_rows
from curate.embed import Embedder
from curate.judge import Verdicts
from curate.keep import keep_rank
from curate.rows import checked_texts, row_text
from seedloop.core.heuristics import MAX_OUTPUT_CHARS, check_output
from seedloop.core.record import DROP_SCHEMA, Drop

Progress = Callable[[str, int, int], None]   # (step, done, total)
RULES = {   # seedloop.core.heuristics.check_output's reasons, for the drop's detail
    "empty_output": "the output is empty",
    "output_too_long": f"the output is longer than {MAX_OUTPUT_CHARS} characters",
    "refusal": "the output refuses or apologizes instead of answering",
    "copied_instruction": "the output repeats the instruction",
}


@dataclass
class Against:
    """Evaluation rows to decontaminate against, with where each came from (for the drop detail)."""
    texts: list[str]
    ids: list[str]
    where: list[str]

    @classmethod
    def from_tables(cls, tables: Sequence[tuple[str, pl.DataFrame]], on: str = "prompt") -> "Against":
        """The rows of (name, record table) pairs, each row located as 'NAME record N'."""
        out = cls([], [], [])
        for name, df in tables:
            for i, r in enumerate(df.select("id", "instruction", "input", "output").iter_rows(named=True)):
                out.texts.append(row_text(r["instruction"], r["input"], r["output"], on))
                out.ids.append(r["id"])
                out.where.append(f"{name} record {i + 1}")
        return out


@dataclass
class CurateResult:
    kept: pl.DataFrame
    drops: pl.DataFrame                         # a drop table: the record columns plus reason, stage, detail
    counts: Counter                             # reason -> rows dropped
    steps: list[tuple[str, int, int]]           # (step, rows in, rows out)
    curve: list[tuple[float, float]]            # (threshold, fraction semantic dedup would remove)
    threshold: float
    index: str = "none"
    nearest: np.ndarray = field(default_factory=lambda: np.zeros(0))   # nearest-neighbour cosine of ...
    semantic_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ... these rows
    embedded_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    verdicts: Verdicts | None = None
    drop_list: list[Drop] = field(default_factory=list)
    encoded: int = 0
    cached: int = 0


class _DropLog:
    """Which rows are still in, and why each other one left."""

    def __init__(self, n: int):
        self.alive = np.ones(n, dtype=bool)
        self.drops: dict[int, Drop] = {}
        self.stage: dict[int, str] = {}   # row -> the step that dropped it
        self.steps: list[tuple[str, int, int]] = []

    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.alive)

    def apply(self, step: str, rows: np.ndarray, drops: Sequence[Drop]) -> None:
        """`drops` index into `rows` (the table the step saw); map them back to table rows."""
        before = int(self.alive.sum())
        for d in drops:
            row = int(rows[d.row])
            self.alive[row] = False
            dup_row = None if d.dup_row is None else int(rows[d.dup_row])
            self.drops[row] = Drop(row, d.reason, d.dup_of, d.similarity, d.detail, dup_row)
            self.stage[row] = step
        self.steps.append((step, before, int(self.alive.sum())))


def curate_table(df: pl.DataFrame, embedder: Embedder, *, threshold: float = 0.95, keep: str = "seed-first",
           on: str = "prompt", heuristics: bool = True, against: Against | None = None,
           against_threshold: float = 0.95, ngram: int = 13, judge: Callable[..., Verdicts] | None = None,
           min_score: float | None = None, select: int | None = None, select_by: str = "diversity",
           index: str = "auto", k: int = 10, where: str | None = None,
           progress: Progress | None = None) -> CurateResult:
    """Curate a record table. `judge(rows, progress=...)` gets row dicts; it is called only when given,
    since it costs requests (see curate.judge.judge_rows)."""
    semantic_dedup.check_threshold(threshold)
    semantic_dedup.check_threshold(against_threshold, "--against-threshold")
    texts = checked_texts(df, on, where=where)
    ids = df.get_column("id").to_list()
    sources = df.get_column("source").to_list()
    dicts = df.select("instruction", "input", "output").to_dicts()
    led = _DropLog(len(texts))
    if heuristics:
        led.apply("heuristics", np.arange(len(texts)), [
            Drop(i, reason, detail=RULES.get(reason, reason)) for i, d in enumerate(dicts)
            if sources[i] != "seed" and d["output"] is not None
            and (reason := check_output(d["instruction"] or "", d["output"]))])
    verdicts = None
    if judge is not None and keep == "score":   # the keep policy needs the scores before dedup
        verdicts = _judge(judge, dicts, led.rows(), _step(progress, "judging"))
    rank = keep_rank(sources, verdicts.scores if verdicts else None, keep)

    rows = led.rows()
    led.apply("exact dedup", rows, exact_dedup.exact_duplicates([texts[i] for i in rows],
                                                                [ids[i] for i in rows], rank[rows]))
    # embedded before near-exact dedup, so its drops get a cosine too (and appear on the report's map)
    emb_rows = led.rows()
    x = embedder.embed([texts[i] for i in emb_rows], progress=_step(progress, "embedding"))
    led.apply("near-exact dedup", emb_rows, edit_dedup.edit_duplicates(
        [texts[i] for i in emb_rows], [ids[i] for i in emb_rows], rank[emb_rows]))
    if against is not None and against.texts:
        _decontaminate(led, embedder, texts, emb_rows, x, against, against_threshold, ngram, progress)
    sem_rows = emb_rows[led.alive[emb_rows]]
    graph = _semantic(led, x[led.alive[emb_rows]], sem_rows, ids, rank, threshold, index, k, progress)
    _fill_similarity(led, emb_rows, x)

    if judge is not None and verdicts is None:
        verdicts = _judge(judge, dicts, led.rows(), _step(progress, "judging"))
    if min_score is not None and verdicts is not None:
        rows = led.rows()
        led.apply("judge --min-score", rows, [
            Drop(j, "low_score", detail=f"judge score {verdicts.scores[i]:g} < {min_score:g}")
            for j, i in enumerate(rows) if verdicts.scores[i] is not None and verdicts.scores[i] < min_score])
    if select is not None:
        _select(led, emb_rows, x, rank, verdicts, select, select_by, progress)

    kept, drops = _frames(df, led, verdicts)
    return CurateResult(kept=kept, drops=drops, counts=Counter(d.reason for d in led.drops.values()),
                        steps=led.steps, curve=semantic_dedup.removal_curve(graph), threshold=threshold,
                        index=graph.index, nearest=graph.nearest, semantic_rows=sem_rows, embedded_rows=emb_rows,
                        embeddings=x, verdicts=verdicts, drop_list=sorted(led.drops.values(), key=lambda d: d.row),
                        encoded=embedder.encoded, cached=embedder.cached)


def _decontaminate(led: _DropLog, embedder: Embedder, texts: list[str], emb_rows: np.ndarray, x: np.ndarray,
                   against: Against, threshold: float, ngram: int, progress) -> None:
    live = led.alive[emb_rows]
    ex = embedder.embed(against.texts, progress=_step(progress, "embedding --against rows"))
    led.apply("decontamination", emb_rows[live], decontaminate.contaminated(
        [texts[i] for i in emb_rows[live]], x[live], against.texts, against.ids, against.where, ex,
        threshold=threshold, n=ngram))


def _semantic(led: _DropLog, xs: np.ndarray, rows: np.ndarray, ids: list[str], rank: np.ndarray,
              threshold: float, index: str, k: int, progress) -> semantic_dedup.NeighbourGraph:
    # searched down to the curve's lowest threshold, so one graph also gives the whole curve
    graph = semantic_dedup.neighbour_graph(xs, min_similarity=min(threshold, semantic_dedup.CURVE[0]), k=k,
                                           index=index, progress=_step(progress, "neighbour graph"))
    led.apply("semantic dedup", rows, semantic_dedup.semantic_duplicates(
        xs, [ids[i] for i in rows], rank[rows], graph, threshold))
    return graph


def _select(led: _DropLog, emb_rows: np.ndarray, x: np.ndarray, rank: np.ndarray, verdicts: Verdicts | None,
            k: int, strategy: str, progress) -> None:
    rows = led.rows()
    pos = {int(r): j for j, r in enumerate(emb_rows)}
    picked = set(select_rows(x[[pos[int(r)] for r in rows]], k, strategy=strategy, rank=rank[rows],
                             scores=[verdicts.scores[i] for i in rows] if verdicts else None,
                             progress=_step(progress, "selecting")))
    led.apply("select", rows, [Drop(j, "not_selected", detail=f"not among the {k} picked by {strategy}")
                               for j in range(len(rows)) if j not in picked])


def _step(progress: Progress | None, name: str):
    return None if progress is None else (lambda done, total: progress(name, done, total))


def _judge(judge, dicts: list[dict], rows: np.ndarray, progress) -> Verdicts:
    """Judge only the rows still in; spread the verdicts back over the whole table."""
    got = judge([dicts[i] for i in rows], progress=progress)
    scores, reasons = [None] * len(dicts), [None] * len(dicts)
    for j, i in enumerate(rows):
        scores[i], reasons[i] = got.scores[j], got.reasons[j]
    got.scores, got.reasons = scores, reasons
    return got


def _fill_similarity(led: _DropLog, emb_rows: np.ndarray, x: np.ndarray) -> None:
    """Near-exact duplicates get the cosine to the row they duplicate, like semantic ones."""
    pos = {int(r): j for j, r in enumerate(emb_rows)}
    for row, d in led.drops.items():
        if d.similarity is None and d.dup_row in pos and row in pos:
            sim = round(float(x[pos[row]] @ x[pos[d.dup_row]]), 4)
            led.drops[row] = Drop(row, d.reason, d.dup_of, sim, d.detail, d.dup_row)


def _frames(df: pl.DataFrame, led: _DropLog, verdicts: Verdicts | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = df.height
    dup_of, sim, reason, detail = [None] * n, [None] * n, [None] * n, [None] * n
    for row, d in led.drops.items():
        dup_of[row], sim[row], reason[row], detail[row] = d.dup_of, d.similarity, d.reason, d.detail
    scores = df.get_column("scores").to_list()
    merged = []
    for i, s in enumerate(scores):
        s = dict(s or {})
        if verdicts is not None and (verdicts.scores[i] is not None or verdicts.reasons[i] is not None):
            s["judge_score"], s["judge_reason"] = verdicts.scores[i], verdicts.reasons[i]
        if dup_of[i] is not None or sim[i] is not None:
            s["dup_of"], s["similarity"] = dup_of[i], sim[i]
        merged.append(s)
    scores_col = pl.Series("scores", merged, dtype=df.schema["scores"])
    full = df.with_columns(scores_col)
    alive = pl.Series(led.alive)
    gone = np.flatnonzero(~led.alive)
    drops = full.filter(~alive).with_columns(
        pl.Series("reason", [reason[i] for i in gone], dtype=pl.Utf8),
        pl.Series("stage", [led.stage[i] for i in gone], dtype=pl.Utf8),
        pl.Series("detail", [detail[i] for i in gone], dtype=pl.Utf8))
    extra = [c for c in drops.columns if c not in DROP_SCHEMA]
    return full.filter(alive), drops.select([*DROP_SCHEMA, *extra])


__all__ = ["Against", "CurateResult", "curate_table", "row_text"]
