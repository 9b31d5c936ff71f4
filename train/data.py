"""Records to token ids and labels, the held-out split, and batches (padded or packed).

- Loss is on response tokens only: every prompt position has label -100.
- Each rendered piece (prompt, response) is tokenized on its own, so the prompt tokens in training
  are exactly the tokens of `render_prompt(record)` that inference and scoring feed the model.
- Packing is padding-free: a batch becomes one row, and the position ids restart at 0 for each
  example. transformers turns restarting position ids into a block-diagonal attention mask, so
  examples never see each other (tests/train/test_data.py checks logits against unpacked ones).
- Every record that does not become an example is counted by reason.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass

import polars as pl

from seedloop.core.errors import InputError
from seedloop.core.tables import read_table
from train.card import lineage
from train.chat import render_segments

IGNORE = -100


@dataclass
class Example:
    id: str
    input_ids: list[int]
    labels: list[int]   # the token itself at response positions, IGNORE elsewhere (not shifted)
    truncated: bool = False


def training_records(df: pl.DataFrame, *, include_rejected: bool = False) -> tuple[list[dict], Counter]:
    """Rows that can teach something: not rejected (unless asked), with an answer to learn."""
    drops: Counter = Counter()
    keep = []
    for row in df.iter_rows(named=True):
        if row.get("status") == "rejected" and not include_rejected:
            drops["rejected"] += 1
            continue
        messages = row.get("messages") or []
        has_answer = (row.get("output") not in (None, "")) or any(m["role"] == "assistant" for m in messages)
        if not has_answer:
            drops["no_output"] += 1
            continue
        keep.append(row)
    return keep, drops


def encode_record(record: dict, tokenizer, *, max_length: int, overlong: str = "drop") -> Example | str:
    """An Example, or the reason it was dropped: too_long, or no_response (nothing left to learn)."""
    input_ids: list[int] = []
    labels: list[int] = []
    for text, is_response in render_segments(record, tokenizer):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if is_response else [IGNORE] * len(ids)
    truncated = len(input_ids) > max_length
    if truncated:
        if overlong == "drop":
            return "too_long"
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    # the first token is never predicted, so a label there teaches nothing
    if all(label == IGNORE for label in labels[1:]):
        return "too_long" if truncated else "no_response"
    return Example(record.get("id") or "", input_ids, labels, truncated)


def encode_records(records: list[dict], tokenizer, *, max_length: int, overlong: str = "drop",
                   ) -> tuple[list[Example], Counter]:
    """Examples plus counts: dropped ones by reason, and `truncated` for kept ones that were cut."""
    examples, counts = [], Counter()
    for record in records:
        result = encode_record(record, tokenizer, max_length=max_length, overlong=overlong)
        if isinstance(result, str):
            counts[result] += 1
            continue
        counts["truncated"] += result.truncated
        examples.append(result)
    return examples, counts


def split_eval(records: list[dict], fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Hold out `fraction` of the records, picked by a hash of their id.

    Hash order, not a random draw: a record keeps its side of the split as the table grows from round
    to round, so a later round never trains on what an earlier one evaluated on (mostly; the cut
    point moves with the table's size).
    """
    if fraction <= 0 or len(records) < 2:
        return records, []
    k = max(1, round(len(records) * fraction))

    def rank(record: dict) -> str:
        return hashlib.sha256(f"{seed}:{record.get('id')}".encode()).hexdigest()

    held = set(sorted(range(len(records)), key=lambda i: rank(records[i]))[:k])
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def read_examples(data, eval_data, tokenizer, *, max_length: int, overlong: str, include_rejected: bool,
                  eval_fraction: float, seed: int) -> tuple[dict, list[Example], list[Example]]:
    """(report, training examples, held-out examples) from a record table (a path or a DataFrame) and
    `eval_data`, or else `eval_fraction` of it held out. The report has the rows, every skip counted
    by reason, and a fingerprint of the record ids; no training example at all is an InputError."""
    df = data if isinstance(data, pl.DataFrame) else read_table(data)
    where = "the data frame" if isinstance(data, pl.DataFrame) else str(data)
    records, counts = training_records(df, include_rejected=include_rejected)
    if eval_data is not None:
        eval_df = eval_data if isinstance(eval_data, pl.DataFrame) else read_table(eval_data)
        train_records, eval_records = records, training_records(eval_df, include_rejected=include_rejected)[0]
    else:
        train_records, eval_records = split_eval(records, eval_fraction, seed)
    train_set, train_counts = encode_records(train_records, tokenizer, max_length=max_length, overlong=overlong)
    eval_set, eval_counts = encode_records(eval_records, tokenizer, max_length=max_length, overlong=overlong)
    counts = counts + train_counts + eval_counts
    counts["truncated"] = train_counts["truncated"] + eval_counts["truncated"]
    if not train_set:
        found = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "none"
        raise InputError(f"no training examples: {df.height} rows, dropped {found}; need records with an "
                         "output that are not rejected and fit in max_length", file=where)
    fingerprint = hashlib.sha256("\n".join(sorted(r.get("id") or "" for r in records)).encode()).hexdigest()[:16]
    report = {"rows": df.height, "counts": dict(counts), "fingerprint": fingerprint,
              "train_examples": len(train_set), "eval_examples": len(eval_set), "lineage": lineage(df)}
    return report, train_set, eval_set


def plan_epoch(n: int, *, batch_size: int, grad_accum: int, seed: int, epoch: int,
               shuffle: bool = True) -> list[list[list[int]]]:
    """Optimizer steps of one epoch: each a list of micro-batches of example indices."""
    order = list(range(n))
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    micro = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return [micro[i:i + grad_accum] for i in range(0, len(micro), grad_accum)]


def collate(examples: list[Example], *, pack: bool, pad_id: int) -> dict:
    """Tensors for one micro-batch. `targets` holds the next token to predict at each position.

    Packed: one row, `position_ids` restart per example, no attention mask and no padding.
    Padded: right padding to the longest example, with an attention mask.
    """
    import torch

    targets = [ex.labels[1:] + [IGNORE] for ex in examples]   # shift within each example
    if pack:
        batch = {
            "input_ids": torch.tensor([[t for ex in examples for t in ex.input_ids]]),
            "position_ids": torch.tensor([[p for ex in examples for p in range(len(ex.input_ids))]]),
            "targets": torch.tensor([[t for row in targets for t in row]]),
        }
    else:
        width = max(len(ex.input_ids) for ex in examples)
        pad = [width - len(ex.input_ids) for ex in examples]
        batch = {
            "input_ids": torch.tensor([ex.input_ids + [pad_id] * p for ex, p in zip(examples, pad)]),
            "attention_mask": torch.tensor([[1] * len(ex.input_ids) + [0] * p for ex, p in zip(examples, pad)]),
            "targets": torch.tensor([row + [IGNORE] * p for row, p in zip(targets, pad)]),
        }
    if not bool((batch["targets"] != IGNORE).any()):
        ids = ", ".join(ex.id for ex in examples[:5])
        raise InputError(f"a batch has no response token to learn from (records {ids}): every label is masked; "
                         "check that these records have outputs and that max_length does not cut them off")
    batch["tokens"] = sum(len(ex.input_ids) for ex in examples)
    # which example each position belongs to, so scores can be summed per example
    owner = [[i] * len(ex.input_ids) for i, ex in enumerate(examples)]
    batch["owner"] = (torch.tensor([[i for row in owner for i in row]]) if pack else
                      torch.tensor([row + [-1] * (width - len(row)) for row in owner]))
    return batch
