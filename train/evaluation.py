"""`evaluate()`: how well a model answers a table of records.

Always: the response-token loss (and perplexity) and greedy answers. Then, when the outputs are
labels from a known set (given, or detected: few distinct short outputs), accuracy of the greedy
answer, accuracy of the best-scoring label (constrained, so a near-miss spelling cannot hide what the
model prefers) and the share of answers that are no label at all; otherwise exact match and ROUGE-L.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl

from seedloop.core.errors import InputError
from seedloop.core.tables import read_table, write_table
from seedloop.core.text import normalize, rouge_l
from train.data import training_records
from train.eval_pass import evaluation_pass
from train.inference import load_for_inference, option_token_ids
from train.classifier_eval import evaluate_classifier
from train.classifier_model import is_classifier
from train.task import detect_labels


def evaluate(model_dir: str | Path, data: str | Path | pl.DataFrame, *, labels: list[str] | None = None,
             max_new_tokens: int | None = None, batch_size: int = 16, max_length: int = 1024,
             score_labels: bool = True, include_rejected: bool = False, predictions: str | Path | None = None,
             progress=None) -> dict:
    """Metrics of the model in `model_dir` (see load_for_inference) on the records in `data`."""
    df = data if isinstance(data, pl.DataFrame) else read_table(data)
    if is_classifier(model_dir):
        return evaluate_classifier(model_dir, df, include_rejected=include_rejected, predictions=predictions,
                                   progress=progress, where=None if isinstance(data, pl.DataFrame) else str(data))
    records, dropped = training_records(df, include_rejected=include_rejected)
    records = [r for r in records if r.get("output") is not None]
    if not records:
        raise InputError(f"no records with an output to evaluate against ({df.height} rows)",
                         file=None if isinstance(data, pl.DataFrame) else str(data))
    model, tokenizer = load_for_inference(model_dir)
    references = [str(r["output"]).strip() for r in records]
    label_set = labels or detect_labels(references)
    if max_new_tokens is None:
        longest = max(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in (label_set or references))
        max_new_tokens = min(longest + 8, 512)
    options = option_token_ids(tokenizer, label_set) if label_set and score_labels else None
    read = evaluation_pass(model, tokenizer, records, options=options, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, max_length=max_length, progress=progress)
    guesses = read.answers
    metrics = {"records": len(records), "dropped": dict(dropped + read.dropped), "loss": read.loss,
               "perplexity": _exp(read.loss), "max_new_tokens": max_new_tokens}
    metrics.update(_match_metrics(guesses, references))
    rows = {"id": [r.get("id") for r in records], "output": references, "prediction": guesses}
    if label_set:
        metrics.update(_label_metrics(guesses, references, label_set))
        if options:
            chosen = [label_set[i] for i in read.best_option]
            metrics["label_accuracy"] = _mean([c == ref for c, ref in zip(chosen, references)])
            rows["scored_label"] = chosen
    if predictions:
        write_table(pl.DataFrame(rows), predictions)
    return metrics


def _match_metrics(guesses: list[str], references: list[str]) -> dict:
    return {"exact_match": _mean([normalize(g) == normalize(r) for g, r in zip(guesses, references)]),
            "rouge_l": _mean([rouge_l(g, r) for g, r in zip(guesses, references)])}


def _label_metrics(guesses: list[str], references: list[str], label_set: list[str]) -> dict:
    known = {normalize(label): label for label in label_set}
    mapped = [known.get(normalize(g)) for g in guesses]
    per_label = Counter(r for r, m in zip(references, mapped) if m == r)
    support = Counter(references)
    return {
        "labels": len(label_set),
        "accuracy": _mean([m == r for m, r in zip(mapped, references)]),
        "not_a_label": _mean([m is None for m in mapped]),
        "per_label_accuracy": {label: round(per_label[label] / support[label], 4) for label in sorted(support)},
    }


def _mean(values: list) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _exp(loss: float | None) -> float | None:
    import math

    return None if loss is None else round(math.exp(min(loss, 50.0)), 3)
