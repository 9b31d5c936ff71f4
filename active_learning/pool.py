"""`select_from_pool`: score an unlabeled pool with a trained model and pick what annotators see next."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from active_learning.batch import check_k, select_batch
from active_learning.scoring import PoolScores, check_strategy, score_classifier, score_pool
from curate import checked_texts
from seedloop.core.record import conform


@dataclass
class Selection:
    picks: pl.DataFrame      # k rows, most useful first: output = the model's answer, scores set
    scores: pl.DataFrame     # every pool row the same way
    pool: PoolScores


def select_from_pool(model_dir: str | Path, pool: pl.DataFrame, k: int, *, strategy: str = "mnlp",
                     labels: list[str] | None = None, diversity: bool = True, pool_factor: float = 3.0,
                     max_new_tokens: int = 48, batch_size: int = 8, samples: int = 5, seed: int = 0,
                     round: int | None = None, embedder=None, loaded=None, where: str | None = None,
                     progress: Callable[[str, int, int], None] | None = None, scorer=None) -> Selection:
    """Score every row of `pool` under `strategy` and pick k: the most uncertain, diversified by
    k-center greedy on sentence embeddings of the prompts over the pool_factor*k most uncertain.

    `loaded` = (model, tokenizer), or a loaded Classifier, skips loading `model_dir` again (the
    simulation reuses one model); a classifier folder (train.is_classifier) is scored by its label
    probabilities, every strategy from one forward pass per item (active_learning/scoring.py);
    `embedder` is a curate.embed.Embedder (default: the packaged MiniLM, no cache).
    `scorer(records, strategy, progress)` replaces in-process scoring (the Ray executor's hook): it
    returns score_pool's PoolScores, and with strategy "mnlp" also the greedy answers of the picks
    that the strategy left unanswered.
    """
    from train import Classifier, classifier_text, is_classifier, load_classifier
    from train import answer, load_for_inference

    pool = conform(pool, where=where or "pool")
    check_k(k, pool.height)
    classifier = scorer is None and (isinstance(loaded, Classifier) or
                                     (model_dir is not None and is_classifier(model_dir)))
    if not classifier:
        check_strategy(strategy, labels)
    texts = checked_texts(pool, "prompt", where=where)     # every row needs an instruction
    records = pool.to_dicts()

    def step(name: str, total: int):
        return (lambda done, *_: progress(name, done, total)) if progress else (lambda *_: None)

    if classifier:   # one forward pass per item gives every strategy's number and the answer
        scored = score_classifier(loaded or load_classifier(model_dir), records, strategy, seed=seed,
                                  batch_size=max(batch_size, 64), progress=step("scoring", len(records)))
        texts = [classifier_text(r) for r in records]      # diversity over what the classifier reads
    elif scorer is not None:
        scored = scorer(records, strategy, step("scoring", len(records)))
    else:
        model, tokenizer = loaded or load_for_inference(model_dir)
        scored = score_pool(model, tokenizer, records, strategy, labels=labels, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, samples=samples, seed=seed, progress=step("scoring", len(records)))
    vectors = None
    if diversity and strategy != "random" and k < len(records):
        if embedder is None:
            from curate import Embedder
            embedder = Embedder()
        vectors = embedder.embed(texts, progress=lambda done, total: step("embedding", total)(done))
    picked = select_batch(scored.uncertainty, k, embeddings=vectors, pool_factor=pool_factor)
    missing = [i for i in picked if scored.answers[i] is None]     # random: answer only what is picked
    if missing:
        chosen = [records[i] for i in missing]
        answers = (scorer(chosen, "mnlp", None).answers if scorer else
                   [a.text for a in answer(model, tokenizer, chosen, max_new_tokens=max_new_tokens,
                                           batch_size=batch_size)])
        for i, text in zip(missing, answers):
            scored.answers[i] = text
    frame = _with_scores(pool, scored, round)
    return Selection(frame[picked], frame, scored)


def _with_scores(pool: pl.DataFrame, scored: PoolScores, round: int | None) -> pl.DataFrame:
    old = pool["scores"].to_list()
    scores = [{**(s or {}), "uncertainty": float(u) if np.isfinite(u) else None, "strategy": scored.strategy}
              for s, u in zip(old, scored.uncertainty)]
    frame = pool.with_columns(
        pl.Series("output", scored.answers, dtype=pl.Utf8),
        pl.Series("scores", scores, dtype=pool.schema["scores"]),
        pl.Series("status", ["pending"] * pool.height, dtype=pl.Utf8),
    )
    if round is not None:
        frame = frame.with_columns(pl.lit(round, dtype=pl.Int32).alias("round"))
    return frame
