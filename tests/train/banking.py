"""Banking77 (shipped in seedloop/core/data/banking77, CC BY 4.0) as "classify this message" instruction records."""

from __future__ import annotations

import csv
import random
from seedloop.core.data import BANKING77
from seedloop.core.record import new_record, to_frame

BANKING = BANKING77.parent
INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "age_limit", "pin_blocked", "cancel_transfer")


def instruction(intents) -> str:
    return f"Classify this banking customer message. Answer with one intent: {', '.join(intents)}."


def banking_records(per_intent: int, *, intents=INTENTS, seed: int = 0, skip: int = 0):
    """`per_intent` messages of each intent (after the first `skip`), shuffled, as a record frame."""
    with (BANKING / "train.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    chosen = []
    for intent in intents:
        chosen += [r for r in rows if r["category"] == intent][skip:skip + per_intent]
    random.Random(seed).shuffle(chosen)
    return to_frame(new_record(instruction(intents), r["text"], r["category"], source="human", status="accepted")
                    for r in chosen)
