"""`seedloop predict` in rows/s beside a plain transformers loop on the same rows (issue 15).

    .venv/bin/python benchmarks/predict_speed.py [--rows 1000] [--gen-rows 64] [--max-new-tokens 16]

Classifier: a MiniLM classifier student (train/configs/classifier.yaml, one epoch) trained here on 200
labelled messages of 10 Banking77 intents, then `train.predict` over --rows other Banking77 messages
(written to Parquet, resumable chunks and all). Baseline: round_time.py's plain loop over the same
merged model (AutoModel forward, mean pooling, head, batches of 64, dynamic padding, inference_mode).

Generator: the packaged SmolLM2-135M-Instruct (fp32 on a CPU, as `load_for_inference` gives it; an
adapter is merged into it, so its speed is the same) answering --gen-rows Banking77 messages, at most
--max-new-tokens tokens each. Baseline: evaluate_speed.py's `plain_generate`: batched model.generate,
left padding, prompts sorted by length, the same batch size and stop tokens.

Both sides include loading the model (and predict its writing), on the same rows in this process,
after one untimed load and a small batch (so neither side pays the process's first-use costs); the
ratio is seedloop / plain rows/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_speed import plain_generate  # noqa: E402
from round_time import ROOT, plain_loop, tables  # noqa: E402

sys.path.insert(0, str(ROOT))
from seedloop.core.record import new_record, to_frame  # noqa: E402


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def classifier_side(rows: int, tmp: Path) -> tuple[float, float]:
    from train.classifier import train_classifier
    from train.classifier_model import load_classifier
    from train.predict import predict

    train, _, pool = tables(10, 20, 0, rows, seed=0)
    train_classifier(train, "minilm", tmp / "clf", epochs=1)
    load_classifier(tmp / "clf").predict_proba(["warm up"])              # untimed: imports, file cache
    ours, _ = timed(lambda: predict(tmp / "clf", pool, tmp / "clf.parquet", batch_size=64))
    load, _ = timed(lambda: load_classifier(tmp / "clf"))
    plain = rows / plain_loop(tmp / "clf", [r["input"] for r in pool.to_dicts()]) + load
    assert pl.read_parquet(tmp / "clf.parquet").height == rows
    return rows / ours, rows / plain


def generator_side(rows: int, max_new_tokens: int, batch_size: int, tmp: Path) -> tuple[float, float]:
    from train.inference import load_for_inference
    from train.predict import predict

    _, _, pool = tables(10, 20, 0, rows, seed=1)
    records = [new_record("Reply to this banking customer in one short sentence.", r["input"]) for r in pool.to_dicts()]
    model, tokenizer = load_for_inference("local")                       # untimed: imports, file cache, threads
    plain_generate(model, tokenizer, records[:4], max_new_tokens=4, batch_size=4)
    del model
    ours, _ = timed(lambda: predict("local", to_frame(records), tmp / "gen.parquet", batch_size=batch_size,
                                    max_new_tokens=max_new_tokens))

    def plain():
        model, tokenizer = load_for_inference("local")
        return plain_generate(model, tokenizer, records, max_new_tokens=max_new_tokens, batch_size=batch_size)

    plain_s, answers = timed(plain)
    same = sum(a == b for a, b in zip(pl.read_parquet(tmp / "gen.parquet").sort("id")["text"],
                                      pl.DataFrame({"id": [r["id"] for r in records], "t": answers}).sort("id")["t"]))
    print(f"  generator answers identical to plain: {same}/{rows}")
    return rows / ours, rows / plain_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1000, help="rows for the classifier")
    ap.add_argument("--gen-rows", type=int, default=64, help="rows for the generator")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16, help="the generator's, both sides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"classifier (MiniLM)": classifier_side(args.rows, Path(tmp)),
                   "generator (SmolLM2-135M)": generator_side(args.gen_rows, args.max_new_tokens, args.batch_size,
                                                              Path(tmp))}
    print(f"\n  {'model':26s} {'seedloop rows/s':>16s} {'plain rows/s':>13s} {'ratio':>6s}")
    for name, (ours, plain) in results.items():
        print(f"  {name:26s} {ours:16.1f} {plain:13.1f} {ours / plain:6.2f}")


if __name__ == "__main__":
    main()
