"""Runs a generator's slots concurrently yet deterministically, so a killed run resumes from the cache.

A slot is one unit of generation work (for Self-Instruct: one "write new tasks" request and the
instances of what it kept). Slots are numbered 0, 1, 2, ... and three rules make the whole run a
function of (seeds, settings) alone, whatever order responses arrive in:

1. Slot i starts only when slots 0..i-W are done (W = window), and it sees exactly their records
   as its exemplar pool. Its prompts are therefore the same on every run, so a re-run finds them
   in the request cache and pays for nothing twice.
2. Near-duplicate admission (`SlotContext.admit`) happens strictly in slot order, in each lane
   (instructions; whole conversations when `--turns` asks for them).
3. The output is the first `want` records of the done prefix (slots 0..k all finished), in slot order.

When the budget runs out, no slot is launched any more, the ones in flight keep what they could
afford, and the output is every record of the finished slots.

The cost of rule 1 is head-of-line blocking behind a slow slot; with W at least the concurrency
cap this is small (see benchmarks/generate_throughput.py).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from seedloop.core.errors import BudgetExceeded
from synth.inflight import REQUEST_PRIORITY
from synth.novelty import RougeNoveltyIndex


@dataclass
class SlotResult:
    records: list[dict] = field(default_factory=list)
    drops: list[dict] = field(default_factory=list)  # each has "reason" and "text"
    budget: str | None = None  # set when the budget stopped part of this slot's requests


@dataclass
class Admission:
    text: str
    accepted: bool
    similar_to: str | None = None
    similarity: float | None = None


class SlotContext:
    def __init__(self, sched: "OrderedSlots", index: int, view: list[dict]):
        self._sched = sched
        self.index = index
        self.view = view  # records of slots 0..index-W, in slot order
        self.rng = random.Random(f"{sched.seed}:{index}")
        self.committed: set[str] = set()   # the admission lanes this slot has taken its turn in

    def request_seed(self) -> int:
        return self.rng.randrange(2**31)

    async def admit(self, texts: list[str], lane: str = "instruction") -> list[Admission]:
        """In slot order: keep each text unless ROUGE-L-close to anything admitted before it in `lane`
        (instructions; whole conversations for multi-turn generation). One turn per slot and lane."""
        s, queue = self._sched, self._sched.lanes[lane]
        async with s._turn:
            await s._turn.wait_for(lambda: queue.committed == self.index)
            out = [queue.admit(text) for text in texts]
            self._commit_locked(lane)
            return out

    async def skip_turns(self) -> None:
        """Take, without admitting anything, each turn this slot has not taken, in lane order."""
        s = self._sched
        for lane, queue in s.lanes.items():
            if lane in self.committed:
                continue
            async with s._turn:
                await s._turn.wait_for(lambda: queue.committed == self.index)
                self._commit_locked(lane)

    def _commit_locked(self, lane: str) -> None:
        self.committed.add(lane)
        self._sched.lanes[lane].committed += 1
        self._sched._turn.notify_all()


class _Lane:
    """One kind of text admitted in slot order, with its own novelty index (seeded with known texts)."""

    def __init__(self, threshold: float, known: list[str]):
        self.index = RougeNoveltyIndex(threshold)
        self.texts: list[str] = []
        self.committed = 0   # slots that have taken their turn here
        for text in known:  # seeds: generated texts must differ from them too
            if self.index.nearest(text) is None:
                self.index.add(text)
                self.texts.append(text)

    def admit(self, text: str) -> Admission:
        hit = self.index.nearest(text)
        if hit is None:
            self.index.add(text)
            self.texts.append(text)
            return Admission(text, True)
        return Admission(text, False, self.texts[hit[0]], round(hit[1], 4))


SlotFn = Callable[[SlotContext], Awaitable[SlotResult]]


@dataclass
class Outcome:
    records: list[dict]
    drops: list[dict]
    slots: int
    stop_reason: str  # "done", "budget" or "exhausted"
    message: str = ""


class OrderedSlots:
    def __init__(self, *, want: int, window: int, seed: int, known_texts: list[str],
                 max_slots: int | None = None, stall: int = 20, threshold: float = 0.7,
                 progress: Callable[[int], None] | None = None, lanes: dict[str, list[str]] | None = None):
        self.want, self.window, self.seed = want, max(1, window), seed
        self.max_slots = max_slots or max(50, 20 * want)
        self.stall = stall  # give up after this many slots in a row yield nothing
        # admission lanes: instructions always; others (whole conversations) when a method asks
        self.lanes = {name: _Lane(threshold, known) for name, known in
                      {"instruction": known_texts, **(lanes or {})}.items()}
        self._turn = asyncio.Condition()
        self.progress = progress

    async def run(self, slot_fn: SlotFn) -> Outcome:
        """Run slot_fn on slots 0, 1, 2, ... under the rules above until the done prefix holds `want`
        records, the budget stops it, or the slots run out (`max_slots`, or `stall` empty in a row)."""
        prefix = _Prefix()
        done: dict[int, SlotResult] = {}       # finished, waiting for a slot before them to finish
        tasks: dict[int, asyncio.Task] = {}    # in flight
        launched, budget_error = 0, None
        try:
            while len(prefix.records) < self.want:
                # after a budget stop (or a stall), launch nothing more but let in-flight slots land in the cache
                if budget_error is None and prefix.empty_run < self.stall:
                    launched = self._launch(slot_fn, prefix, tasks, launched)
                if not tasks:
                    break
                budget = await self._collect(tasks, done)
                budget_error = budget_error or budget   # the first stop's message
                self._absorb(prefix, done)
        finally:
            for t in tasks.values():
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks.values(), return_exceptions=True)
        return self._outcome(prefix, budget_error)

    def _launch(self, slot_fn: SlotFn, prefix: _Prefix, tasks: dict[int, asyncio.Task], launched: int) -> int:
        """Start every slot rule 1 allows (slot i once slots 0..i-W are done); returns how many are launched in all."""
        while launched < self.max_slots and launched < prefix.slots + self.window:
            view = prefix.records[:prefix.counts[max(0, launched - self.window + 1)]]
            tasks[launched] = asyncio.create_task(self._run_slot(slot_fn, launched, view))
            launched += 1
        return launched

    async def _run_slot(self, slot_fn: SlotFn, i: int, view: list[dict]) -> SlotResult | BaseException:
        """One slot's result, or the fatal error it raised. A slot that did not take its admission turns
        (rule 2) skips them, so the slots after it are not kept waiting."""
        ctx = SlotContext(self, i, view)
        REQUEST_PRIORITY.set(i)   # this task's context: its requests, and those of tasks it starts
        try:
            result: SlotResult | BaseException = await slot_fn(ctx)
        except asyncio.CancelledError:
            raise
        except BudgetExceeded as exc:  # nothing of this slot was affordable
            result = SlotResult(budget=str(exc))
        except Exception as exc:  # fatal, raised by _collect
            result = exc
        await ctx.skip_turns()
        return result

    @staticmethod
    async def _collect(tasks: dict[int, asyncio.Task], done: dict[int, SlotResult]) -> str | None:
        """Wait for a slot to finish; move every finished one from `tasks` to `done`, in slot order.
        Raises a slot's fatal error; returns the first budget stop among them."""
        finished, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        budget_error = None
        for i in [i for i, t in tasks.items() if t in finished]:
            result = tasks.pop(i).result()
            if isinstance(result, BaseException):
                raise result
            done[i] = result
            budget_error = budget_error or result.budget
        return budget_error

    def _absorb(self, prefix: _Prefix, done: dict[int, SlotResult]) -> None:
        """Grow the done prefix by every slot that now continues it (rule 3)."""
        while prefix.slots in done:
            prefix.add(done.pop(prefix.slots))
            if self.progress:
                self.progress(min(len(prefix.records), self.want))

    def _outcome(self, prefix: _Prefix, budget_error: str | None) -> Outcome:
        records, drops, slots = prefix.records, prefix.drops, prefix.slots
        if len(records) >= self.want:
            return Outcome(records[:self.want], drops, slots, "done")
        if budget_error is not None:
            return Outcome(records, drops, slots, "budget", budget_error)
        why = (f"{prefix.empty_run} slots in a row yielded nothing" if prefix.empty_run >= self.stall
               else f"the cap is {self.max_slots} slots")
        return Outcome(records, drops, slots, "exhausted",
                       f"the teacher yielded {len(records)} usable records in {slots} slots ({why}); "
                       "see the drop reasons, try a stronger teacher or other seeds")


@dataclass
class _Prefix:
    """The done prefix: the records of slots 0..k (all finished), in slot order, ids unique."""
    records: list[dict] = field(default_factory=list)
    drops: list[dict] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0])  # counts[k] = len(records) after slots 0..k-1
    seen_ids: set[str] = field(default_factory=set)
    empty_run: int = 0  # slots in a row, ending with the last one, that added no record

    @property
    def slots(self) -> int:
        return len(self.counts) - 1

    def add(self, res: SlotResult) -> None:
        """Append the next slot's records (a repeated id is dropped) and drops."""
        for rec in res.records:
            if rec["id"] in self.seen_ids:
                self.drops.append({"reason": "duplicate_id", "text": rec["instruction"], **rec})
                continue
            self.seen_ids.add(rec["id"])
            self.records.append(rec)
        self.drops.extend(res.drops)
        self.empty_run = 0 if len(self.records) > self.counts[-1] else self.empty_run + 1
        self.counts.append(len(self.records))
