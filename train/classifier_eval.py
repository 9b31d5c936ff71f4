"""How well a classifier student labels a table: one forward pass per record, in batches.

Metrics: accuracy, macro-F1 over the labels seen in the references, the mean cross-entropy
(`loss`, the promotion metric `eval_loss` of the loop), and per-label accuracy. A reference that is
not one of the classifier's labels counts as wrong (`not_a_label` gives their share).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from seedloop.core.errors import InputError
from seedloop.core.tables import write_table
from train.classifier import labelled_pairs
from train.classifier_model import load_classifier


def evaluate_classifier(model_dir: str | Path, df: pl.DataFrame, *, include_rejected: bool = False,
                        predictions: str | Path | None = None, batch_size: int = 64, progress=None,
                        where: str | None = None) -> dict:
    texts, references, ids, drops = labelled_pairs(df, include_rejected=include_rejected)
    if not texts:
        raise InputError(f"no records with a text and a label to evaluate against ({df.height} rows)", file=where)
    clf = load_classifier(model_dir)
    started = time.perf_counter()
    probs = clf.predict_proba(texts, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - started
    guesses = [clf.labels[i] for i in probs.argmax(axis=1)]
    metrics = {"task": "classification", "records": len(texts), "dropped": drops, "labels": len(clf.labels),
               **label_metrics(guesses, references, probs, clf.labels),
               "messages_per_second": round(len(texts) / max(seconds, 1e-9), 1)}
    if predictions:
        write_table(pl.DataFrame({"id": ids, "text": texts, "output": references, "prediction": guesses,
                                  "probability": probs.max(axis=1).astype(float)}), predictions)
    return metrics


def label_metrics(guesses: list[str], references: list[str], probs: np.ndarray, labels: list[str]) -> dict:
    index = {label: i for i, label in enumerate(labels)}
    known = [index.get(r) for r in references]
    nll = [-np.log(max(float(p[i]), 1e-12)) for p, i in zip(probs, known) if i is not None]
    right = Counter(r for g, r in zip(guesses, references) if g == r)
    support = Counter(references)
    return {
        "accuracy": round(float(np.mean([g == r for g, r in zip(guesses, references)])), 4),
        "macro_f1": round(macro_f1(guesses, references), 4),
        "loss": round(float(np.mean(nll)), 5) if nll else None,
        "not_a_label": round(float(np.mean([i is None for i in known])), 4),
        "per_label_accuracy": {label: round(right[label] / support[label], 4) for label in sorted(support)},
    }


def macro_f1(guesses: list[str], references: list[str]) -> float:
    scores = []
    for label in sorted(set(references)):
        tp = sum(g == r == label for g, r in zip(guesses, references))
        predicted, actual = sum(g == label for g in guesses), sum(r == label for r in references)
        scores.append(0.0 if tp == 0 else 2 * tp / (predicted + actual))
    return float(np.mean(scores))
