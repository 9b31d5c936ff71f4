"""Build the intents example from the Banking77 training split that ships with seedloop.

    python examples/intents/make.py      # rewrites seeds.jsonl, pool.jsonl and eval.jsonl here

Twenty card, transfer, top-up and cash intents, many easy to confuse (a card that has not arrived vs.
when it will arrive; a declined payment vs. a card that does not work vs. one a shop does not accept;
a pending transfer vs. a pending top-up), so that two labels per intent leave plenty to learn: a
student's accuracy keeps rising as labels are added. Per intent, from its messages in a seeded shuffle:
SEEDS labelled seeds, then POOL pool messages (their true intent as output: the automatic reviewer's
answer key, never trained on with `train.unreviewed: exclude`), then EVAL held-out messages. A message
is used once: duplicates up to case and spacing are dropped first, so no evaluation message is also
a seed or in the pool. Running it again writes the same files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from seedloop.core.data import banking77_rows

INTENTS = ("card_arrival", "card_delivery_estimate", "card_not_working", "card_swallowed", "lost_or_stolen_card",
           "compromised_card", "declined_card_payment", "card_payment_not_recognised", "contactless_not_working",
           "card_acceptance", "pending_transfer", "transfer_not_received_by_recipient", "declined_transfer",
           "cancel_transfer", "top_up_failed", "pending_top_up", "top_up_reverted", "cash_withdrawal_charge",
           "wrong_amount_of_cash_received", "pending_cash_withdrawal")
SEEDS, POOL, EVAL = 2, 20, 10
INSTRUCTION = "Which banking intent does this customer message express?"   # the labels are the outputs
HERE = Path(__file__).resolve().parent


def messages_by_intent() -> dict[str, list[str]]:
    """Each intent's messages, each distinct text once (up to case and spacing), in file order."""
    seen, out = set(), {intent: [] for intent in INTENTS}
    for text, intent in banking77_rows():
        key = " ".join(text.lower().split())
        if intent in out and key not in seen:
            seen.add(key)
            out[intent].append(text.strip())
    return out


def write(name: str, rows: list[tuple[str, str]]) -> None:
    with (HERE / name).open("w", encoding="utf-8") as fh:
        for text, intent in rows:
            row = {"instruction": INSTRUCTION, "input": text, "output": intent}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(0)
    splits = {"seeds.jsonl": [], "pool.jsonl": [], "eval.jsonl": []}
    for intent, texts in messages_by_intent().items():
        rng.shuffle(texts)
        cuts = (0, SEEDS, SEEDS + POOL, SEEDS + POOL + EVAL)
        for name, lo, hi in zip(splits, cuts, cuts[1:]):
            splits[name] += [(t, intent) for t in texts[lo:hi]]
    for name, rows in splits.items():
        rng.shuffle(rows)   # intents interleaved, as a real export would be
        write(name, rows)
        print(f"{name}: {len(rows)} messages")


if __name__ == "__main__":
    main()
