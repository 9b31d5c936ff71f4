"""`seedloop generate`: seeds in, N new records out, through the slot scheduler and the engine."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from seedloop.core.errors import ConfigError
from seedloop.core.record import drop_table, make_id, to_frame
from synth.cache import RequestCache, RunRow
from synth.conversations import MultiTurnGenerator
from synth.engine import Limits, Stats, TeacherClient
from synth.evol_instruct import EvolInstructGenerator
from synth.prices import PriceTable
from synth.scheduler import OrderedSlots
from synth.self_instruct import SelfInstructGenerator
from synth.teachers import Teacher

METHODS = {"self-instruct": SelfInstructGenerator, "evol-instruct": EvolInstructGenerator}


@dataclass
class GenerateResult:
    records: pl.DataFrame
    drops: pl.DataFrame
    drop_counts: Counter
    stats: Stats
    slots: int
    stop_reason: str
    message: str
    spent: float


async def generate_async(seeds: pl.DataFrame, client: TeacherClient, *, n: int, method: str = "self-instruct",
                         window: int | None = None, seed: int = 0, threshold: float = 0.7, turns: int = 1,
                         progress: Callable[[int], None] | None = None, **method_options) -> GenerateResult:
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}': expected one of {', '.join(METHODS)}")
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if turns < 1:
        raise ConfigError(f"--turns must be at least 1, got {turns}")
    if turns > 1 and method_options.get("schema") is not None:   # later turns are answered as free text
        raise ConfigError("--schema covers single-turn records only; it cannot be combined with --turns yet")
    generator = METHODS[method](client, seeds.to_dicts(), **method_options)
    if turns > 1:   # the method's records become conversations (synth/conversations.py)
        generator = MultiTurnGenerator(generator, client, seeds.to_dicts(), turns=turns,
                                       temperature=method_options.get("temperature", 0.7))
    slots = OrderedSlots(want=n, window=window or client.limits.concurrency, seed=seed,
                         known_texts=generator.known_texts(), threshold=threshold, progress=progress,
                         lanes=generator.lanes() if turns > 1 else None)
    outcome = await slots.run(generator)
    await client.drain()   # answers already paid for land in the cache, for a later run to reuse
    drops = drop_table(_as_row(d) for d in outcome.drops)
    return GenerateResult(records=to_frame(outcome.records), drops=drops,
                          drop_counts=Counter(d["reason"] for d in outcome.drops), stats=client.stats,
                          slots=outcome.slots, stop_reason=outcome.stop_reason, message=outcome.message,
                          spent=client.spent)


def _as_row(d: dict) -> dict:
    """A generation drop as a drop-table row. The dropped text is the candidate instruction, or the
    answer when the stage is `instance` or `response` (then `instruction` says what it answered);
    near-duplicate, evolution and schema-validation facts go into the detail."""
    answer = d.get("stage") in ("instance", "response") or (d.get("stage") == "turn" and "instruction" in d)
    row = {"instruction": d.get("instruction") if answer else d.get("text"), "input": d.get("input"),
           "output": d.get("output", d.get("text")) if answer or "output" in d else None,
           "source": "generated", "reason": d["reason"], "stage": d.get("stage")}
    facts = [f"{k} {d[k]:.3f}" if isinstance(d[k], float) else f"{k} {d[k]}"
             for k in ("similar_to", "similarity", "operation", "parent", "schema_error") if d.get(k) is not None]
    return {**row, "id": d.get("id") or make_id(row["instruction"] or "", row["input"] or ""),
            "detail": "; ".join(facts) or None}


def run_generate(seeds: pl.DataFrame, *, n: int, teacher: Teacher, cache: str | Path, job: str,
                 method: str = "self-instruct", limits: Limits | None = None, prices: PriceTable | None = None,
                 max_cost: float | None = None, seed: int = 0, window: int | None = None,
                 progress: Callable[[int], None] | None = None, **method_options) -> GenerateResult:
    """Synchronous entry point: opens the cache, runs the teacher through a client, closes both; the run's
    records and requests go into the cache's `runs`, the measured yield of the next estimate."""
    store = RequestCache(cache)

    async def main() -> GenerateResult:
        client = TeacherClient(teacher, store, limits=limits, prices=prices, max_cost=max_cost, job=job)
        try:
            return await generate_async(seeds, client, n=n, method=method, window=window, seed=seed,
                                        progress=progress, **method_options)
        finally:
            await teacher.aclose()

    try:
        result = asyncio.run(main())
        s, label = result.stats, method + ("+schema" if method_options.get("schema") else "")  # asks more
        store.record_run(RunRow(job, label, method_options.get("turns", 1), teacher.spec, result.records.height,
                                s.sent + s.cached, s.sent, s.output_tokens))
        return result
    finally:
        store.close()
