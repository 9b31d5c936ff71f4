"""Which waiting request is sent next: the one of the earliest slot.

The scheduler (synth/scheduler.py) sets `REQUEST_PRIORITY` to a slot's number while the slot runs
(asyncio copies it into every task the slot starts). When more requests wait than `--concurrency`
allows in flight, `PrioritySemaphore` lets the lowest number go first, then first come, first served.
Why: the output is the done prefix of slots 0, 1, 2, ..., so a request of slot 3 holding the place a
request of slot 40 wanted finishes the run sooner, and at its end fewer requests are left half-done.
The order of sending changes no prompt, so the output stays the same.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools

REQUEST_PRIORITY: contextvars.ContextVar[int] = contextvars.ContextVar("request_priority", default=0)


class PrioritySemaphore:
    """A semaphore whose waiters are woken lowest priority number first (ties: arrival order)."""

    def __init__(self, value: int):
        self._value = value
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._arrival = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrival), future))
        try:
            await future
        except asyncio.CancelledError:
            # woken and cancelled in the same breath: the place was ours, so hand it on
            if future.done() and not future.cancelled():
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():   # a cancelled waiter's future is done: skip it
                future.set_result(None)
                return
        self._value += 1
