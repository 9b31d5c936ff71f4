"""Generative `seedloop evaluate`: messages/s beside a plain transformers loop and beside the code path
it replaced (issue 14), on the same Banking77 messages.

    .venv/bin/python benchmarks/evaluate_speed.py [--rows 400] [--steps 16] [--model DIR] [--keep DIR]
                                                  [--batch-size 16] [--old-rows 80] [--threads N]
    # a few minutes: --rows 80 --steps 4 --old-rows 24   (or --model DIR, an adapter kept with --keep)

Data: 10 Banking77 intents as "classify this message" records (the instruction lists the intents),
split as tests/train/banking.py does: per intent the first --train-per-intent messages train, the
next ones are the --rows test messages. Model: a QLoRA adapter on SmolLM2-135M-Instruct trained here
for --steps steps (4-bit NF4 base, as `seedloop train` does by default), or --model (an adapter
folder, a merged model, or `local` for the untrained student). --keep DIR saves the trained adapter.

Three sides, one after another in this process, on the same test messages:
  seedloop   train.evaluate(): loss, greedy answers, accuracy, best-scoring label (all metrics).
  plain      the best plain use of transformers for the answers alone: the model as
             load_for_inference gives it (adapter merged), prompts sorted by length, model.generate
             in batches with left padding, the same max_new_tokens and stop tokens.
  before     evaluate() as it was before issue 14 (commit 350f1af): 4-bit base + peft adapter, a
             loss pass, model.generate per batch of 8, every label scored (score_options, batch 16), its
             defaults then.
             Slow (the issue measured 2.1 s per message), so it runs on the first --old-rows rows
             only, right before seedloop runs on the same rows; the metrics of both are printed.
             --old-rows 0 skips it.
Loading the model is left out of every figure (seedloop's is timed apart, before and after). On a
shared machine timings are noisy; --threads 1 avoids threads waiting on each other when other
processes hold the cores.
Goal (issue 14): seedloop at least 10x faster per message than before, with the same metrics.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "age_limit", "pin_blocked", "cancel_transfer",
           "top_up_failed", "balance_not_updated_after_bank_transfer", "apple_pay_or_google_pay",
           "declined_card_payment")


def banking_split(train_per_intent: int, test_rows: int):
    """(train, test) record frames: per intent the first messages train and the next ones test."""
    from seedloop.core.data import banking77_rows
    from seedloop.core.record import new_record, to_frame

    instruction = f"Classify this banking customer message. Answer with one intent: {', '.join(INTENTS)}."
    rows = banking77_rows()
    test_per_intent = -(-test_rows // len(INTENTS))
    train, test = [], []
    for intent in INTENTS:
        texts = [text for text, category in rows if category == intent]
        train += [(t, intent) for t in texts[:train_per_intent]]
        test += [(t, intent) for t in texts[train_per_intent:train_per_intent + test_per_intent]]
    random.Random(0).shuffle(train)
    random.Random(1).shuffle(test)

    def frame(pairs):
        return to_frame(new_record(instruction, t, c, source="human", status="accepted") for t, c in pairs)

    return frame(train), frame(test[:test_rows])


def train_adapter(train_df, out: Path, steps: int) -> Path:
    from train import train

    started = time.perf_counter()
    train(train_df, "local", out, max_steps=steps, batch_size=8, lr=1e-3, max_length=256, eval_fraction=0.0,
          gradient_checkpointing=False, report_to="none")
    print(f"trained a QLoRA adapter for {steps} steps in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def old_load(model_dir: str):
    """The model as load_for_inference gave it before issue 14: the base as trained (4-bit) plus peft."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from train.chat import setup_chat_template
    from train.inference import adapter_base, adapter_train_config, load_for_inference
    from train.models import disable_cpu_4bit_repack, load_base

    folder = Path(model_dir)
    if not (folder / "adapter_config.json").is_file():
        return load_for_inference(model_dir)    # a plain model loaded then as now
    trained = adapter_train_config(folder)
    model = load_base(adapter_base(folder, trained), four_bit=trained.get("four_bit", True), dtype="fp32")
    model = PeftModel.from_pretrained(model, str(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    setup_chat_template(tokenizer, "auto")
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    disable_cpu_4bit_repack(model)
    return model.eval(), tokenizer


def old_evaluate(model, tokenizer, df, *, batch_size: int) -> dict:
    """The body of evaluate() before issue 14, on an already loaded model."""
    from train.data import encode_records, training_records
    from train.evaluation import _label_metrics, _match_metrics, _mean
    from train.inference import answer, score_options
    from train.recipe import eval_loss
    from train.task import detect_labels

    records, _ = training_records(df)
    examples, _ = encode_records(records, tokenizer, max_length=1024, overlong="drop")
    loss = eval_loss(model, examples, batch_size=batch_size, pack=True, pad_id=tokenizer.pad_token_id or 0)
    references = [str(r["output"]).strip() for r in records]
    label_set = detect_labels(references)
    longest = max(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in (label_set or references))
    answers = answer(model, tokenizer, records, max_new_tokens=min(longest + 8, 512), batch_size=batch_size)
    guesses = [a.text for a in answers]
    metrics = {"loss": loss, **_match_metrics(guesses, references)}
    if label_set:
        metrics.update(_label_metrics(guesses, references, label_set))
        scores = score_options(model, tokenizer, records, label_set, batch_size=batch_size * 2)
        chosen = [label_set[i] for i in scores.argmax(axis=1)]
        metrics["label_accuracy"] = _mean([c == ref for c, ref in zip(chosen, references)])
    return metrics


def plain_generate(model, tokenizer, records: list[dict], *, max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers with batched model.generate, left padding, prompts sorted by length."""
    import torch

    from train.chat import render_prompt
    from train.inference import decode_answer, stop_ids

    stop = stop_ids(tokenizer)
    tokenizer.padding_side = "left"
    prompts = [render_prompt(r, tokenizer) for r in records]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers = [""] * len(prompts)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in chunk], add_special_tokens=False, padding=True, return_tensors="pt")
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                 pad_token_id=tokenizer.pad_token_id)
            for i, ids in zip(chunk, out[:, enc["input_ids"].shape[1]:].tolist()):
                answers[i] = decode_answer(tokenizer, ids, stop)[0]
    return answers


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=400, help="test messages")
    ap.add_argument("--train-per-intent", type=int, default=24)
    ap.add_argument("--steps", type=int, default=16, help="training steps of the adapter (without --model)")
    ap.add_argument("--model", help="evaluate this model instead of training one")
    ap.add_argument("--keep", type=Path, help="save the trained adapter here")
    ap.add_argument("--batch-size", type=int, default=16, help="seedloop's and plain's")
    ap.add_argument("--old-rows", type=int, default=80, help="time the code before issue 14 on this many rows")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    train_df, test_df = banking_split(args.train_per_intent, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or str(train_adapter(train_df, args.keep or Path(tmp) / "adapter", args.steps))
        print(f"\n{test_df.height} Banking77 messages, {len(INTENTS)} intents, model "
              f"{args.model or f'QLoRA adapter ({args.steps} steps)'}, batch {args.batch_size}, "
              f"{torch.get_num_threads()} threads")
        print(f"  {'side':62s} {'seconds':>8s} {'msg/s':>8s} {'s/msg':>7s}")
        ours_s = compare_plain(args, model_dir, test_df, Path(tmp))
        old_rows = min(args.old_rows, test_df.height)
        if old_rows:
            compare_before(args, model_dir, test_df.head(old_rows))
        else:
            print(f"  seedloop per message: {2.1 / (ours_s / test_df.height):.1f}x faster than the 2.1 s/message "
                  "the issue measured before")


def seedloop_evaluate(model_dir: str, df, batch_size: int, predictions: Path | None = None):
    """(seconds without loading, metrics) of train.evaluate(). Loading is timed on its own just before
    and just after, and the faster of the two is taken off (it errs towards seedloop being slower)."""
    from train import evaluate, load_for_inference

    before, _ = timed(lambda: load_for_inference(model_dir))
    total, metrics = timed(lambda: evaluate(model_dir, df, batch_size=batch_size, predictions=predictions))
    after, _ = timed(lambda: load_for_inference(model_dir))
    return total - min(before, after), metrics


def compare_plain(args, model_dir: str, test_df, tmp: Path) -> float:
    import polars as pl

    from train import load_for_inference

    n = test_df.height
    ours_s, metrics = seedloop_evaluate(model_dir, test_df, args.batch_size, tmp / "predictions.jsonl")
    line("seedloop evaluate: loss, answers, accuracy, scored labels", ours_s, n)
    model, tokenizer = load_for_inference(model_dir)
    plain_s, plain = timed(lambda: plain_generate(model, tokenizer, test_df.to_dicts(),
                                                  max_new_tokens=metrics["max_new_tokens"], batch_size=args.batch_size))
    line("plain batched model.generate: answers only", plain_s, n)
    same = sum(a == b for a, b in zip(pl.read_ndjson(tmp / "predictions.jsonl")["prediction"], plain))
    print(f"  seedloop / plain messages/s: {plain_s / ours_s:.2f}x; answers identical: {same}/{n}; "
          f"accuracy {metrics.get('accuracy')}, label_accuracy {metrics.get('label_accuracy')}")
    return ours_s


def compare_before(args, model_dir: str, df) -> None:
    """The code before issue 14 and seedloop now, one right after the other, on the same rows."""
    n = df.height
    old_model, old_tokenizer = old_load(model_dir)
    old_s, old = timed(lambda: old_evaluate(old_model, old_tokenizer, df, batch_size=8))   # its default
    del old_model
    ours_s, now = seedloop_evaluate(model_dir, df, args.batch_size)
    line(f"before issue 14, first {n} rows", old_s, n)
    line(f"seedloop evaluate, the same {n} rows", ours_s, n)
    print(f"  seedloop per message: {old_s / ours_s:.1f}x faster than before")
    for key in ("loss", "accuracy", "label_accuracy", "not_a_label", "exact_match", "rouge_l"):
        print(f"    {key:15s} before {old.get(key)!s:22s} now {now.get(key)}")


def line(name: str, seconds: float, n: int) -> None:
    print(f"  {name:58s} {seconds:8.1f} {n / seconds:8.2f} {seconds / n:7.3f}", flush=True)


if __name__ == "__main__":
    main()
