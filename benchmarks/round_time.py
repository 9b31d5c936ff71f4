"""One active-learning round with a classifier student, timed, and its inference beside plain transformers.

    .venv/bin/python benchmarks/round_time.py                 # 200 labels, 400 to evaluate, a pool of 1,000

A round, as `seedloop cycle` runs it on a classification workspace: train the default classifier
(MiniLM + LoRA, train/configs/classifier.yaml) on 200 labels (20 per intent, 10 Banking77 intents),
evaluate it on 400 held-out messages (`train.evaluate`), score a pool of 1,000 other messages and
pick 50 by margin with k-center diversity (`active_learning.select_from_pool`). Goal: 3 minutes or less
on 2 idle cores.

Then the classifier's inference speed: `evaluate` in messages/s beside the fair baseline, a plain
transformers loop over the same merged model (AutoModel forward, mean pooling, head, batches of 64
with dynamic padding, under torch.inference_mode), on the same 400 messages, in this process.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seedloop.core.data import BANKING77  # noqa: E402
from seedloop.core.record import new_record, to_frame  # noqa: E402

INSTRUCTION = "Classify this banking customer message by intent."


def tables(n_intents: int, per_intent: int, test: int, pool: int, seed: int):
    df = pl.read_csv(BANKING77).sample(fraction=1.0, shuffle=True, seed=seed)
    intents = sorted(random.Random(seed).sample(sorted(df["category"].unique().to_list()), n_intents))
    mine = df.filter(pl.col("category").is_in(intents))
    train = pl.concat([mine.filter(pl.col("category") == i).head(per_intent) for i in intents])
    rest = mine.join(train, on="text", how="anti")
    held, pool_rows = rest.head(test), rest.slice(test, pool)
    if pool_rows.height < pool:   # 10 intents leave about 600: the rest of the pool is other intents' messages
        others = df.filter(~pl.col("category").is_in(intents)).head(pool - pool_rows.height)
        pool_rows = pl.concat([pool_rows, others])

    def frame(rows, source, labelled=True):
        return to_frame(new_record(INSTRUCTION, t, c if labelled else None, source=source, status="accepted")
                        for t, c in zip(rows["text"], rows["category"]))
    return frame(train, "human"), frame(held, "human"), frame(pool_rows, "pool", labelled=False)


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def plain_loop(folder: Path, texts: list[str]) -> float:
    """Messages/s of a plain transformers loop over the same weights, merged (the baseline)."""
    from train.classifier_model import load_classifier

    clf = load_classifier(folder)            # LoRA already folded in: the plain model a user would serve
    encoder, head = clf.model.encoder, clf.model.head
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            batch = clf.tokenizer(texts[i:i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            head(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)).argmax(-1)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intents", type=int, default=10)
    parser.add_argument("--per-intent", type=int, default=20)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import train
    from active_learning import select_from_pool

    train_df, test_df, pool_df = tables(args.intents, args.per_intent, args.test, args.pool, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clf"
        _, t_train = timed(lambda: train.train_classifier(train_df, "minilm", folder))
        metrics, t_eval = timed(lambda: train.evaluate(folder, test_df))
        picks, t_select = timed(lambda: select_from_pool(folder, pool_df, args.k, strategy="margin"))
        total = t_train + t_eval + t_select
        print(f"round: train {train_df.height} labels {t_train:.1f} s, evaluate {test_df.height} {t_eval:.1f} s "
              f"(accuracy {metrics['accuracy']:.4f}), score {pool_df.height} and pick {picks.picks.height} "
              f"{t_select:.1f} s; total {total:.1f} s = {total / 60:.2f} min (goal <= 3 min)")
        texts = [train.classifier_text(r) for r in test_df.to_dicts()]
        ours = train.evaluate(folder, test_df)["messages_per_second"]
        plain = plain_loop(folder, texts)
        print(f"classifier inference: seedloop evaluate {ours:.0f} messages/s, plain transformers loop "
              f"{plain:.0f} messages/s, ratio {ours / plain:.2f} (goal: evaluate >= 100 messages/s)")


if __name__ == "__main__":
    main()
