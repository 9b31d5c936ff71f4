"""Find a server's rate limit from its 429s: additive increase, multiplicative decrease (AIMD) on the
rate at which requests are started.

What it controls is the send *rate* (requests/s), paced evenly, not the number in flight. APIs limit
requests (and tokens) per minute, checked over short windows, and a rate R is kept only by a rate:
with a latency L, a concurrency C sends C/L requests/s, so a concurrency limit would have to find
R*L, which moves with every change of latency and is far too coarse when small (R = 40/s at
L = 50 ms is C = 2, and C = 3 is 50% over). `--concurrency` stays the hard cap on requests in flight.

- Until the first 429 nothing is paced: a server that never refuses runs exactly as without this.
- On a 429 the rate drops to BETA times the rate sent at: the paced rate, or at the first 429 the
  requests started in the second up to the refused one. Nothing is sent before the server's
  Retry-After; over that pause a rate limiter's window empties at the rate it filled, so the pause
  costs no throughput.
- One overload counts once: a 429 for a request started before the last decrease (TCP's "once per
  window") only extends the pause. So a burst of 429s from one overshoot lowers the rate by BETA,
  while an overshoot that persists at the new rate lowers it again, round trip after round trip.
- Each second in which the pacer held some request back, the rate grows by STEP of the rate the last
  429 was met at: additive, and relative to where the limit was found, so it is as quick at 5/s as at
  500/s. A rate that holds nothing back (the cap in flight, or the work, is what limits) stays put.
  Grown to FORGET times that rate with no 429, the limit has moved (or that 429 was a stray one,
  met while few requests were going): pacing stops until the next 429 measures it again.
- BETA = 0.9 rather than TCP's 0.5: a 429 from a rate limiter means "a little over R", not a collapsing
  network, and the average of the sawtooth between BETA*R and R is the throughput (0.5 would leave a
  quarter of the quota unused). Far above R, the server holds throughput at R while the rate falls.

Not handled: several processes sharing one key each find a share, but not an equal one quickly;
a tokens-per-minute limit is found as the request rate that keeps under it for the current
request sizes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable, NamedTuple

BETA = 0.9           # the rate kept on a 429
STEP = 0.02          # growth per second, as a fraction of the rate the last 429 was met at
GROW_EVERY = 1.0     # seconds between growth steps (about one window of a per-second limiter)
FORGET = 1.2         # stop pacing once the rate is this far past the last 429 without another
MIN_RATE = 1 / 60    # one request a minute: below this a limit is a quota, not a rate


class Ticket(NamedTuple):
    started: float   # when the request was let go
    epoch: int       # how many times the rate had been lowered by then


class AdaptiveRate:
    """Paces request starts at `rate` (None: not paced). `ticket = await turn()` before each attempt,
    and `rate_limited(ticket, retry_after)` when the server answered it with 429."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep=asyncio.sleep):
        self._clock, self._sleep = clock, sleep   # a test runs both on a virtual clock
        self.rate: float | None = None
        self.decreases = 0
        self._top = 0.0             # the rate the last 429 was met at
        self._next = 0.0            # when the next paced request may start
        self._paused_until = 0.0
        self._changed = 0.0         # when the rate last changed (growth counts from here)
        self._held = False          # whether the pacer made a request wait since the last change
        self._starts: deque[float] = deque()   # start times of the last 2 s, for the first estimate

    async def turn(self) -> Ticket:
        """Wait until this request may start."""
        while True:
            now = self._clock()
            self._grow(now)
            at = max(now, self._paused_until, self._next if self.rate else now)
            epoch = self.decreases
            if self.rate:
                self._held |= self._next > now
                self._next = at + 1 / self.rate
            if at > now:
                await self._sleep(at - now)
                # a 429 while this one waited: its place was spaced at the old rate, so queue again
                if self.decreases != epoch or self._clock() < self._paused_until:
                    continue
            self._record(at)
            return Ticket(at, epoch)

    def rate_limited(self, ticket: Ticket, retry_after: float | None) -> None:
        """A 429 for the request of `ticket`: pause for Retry-After; lower the rate once per overload."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + (retry_after or 0.0))
        if ticket.epoch != self.decreases:
            return                  # sent before the last decrease: the same overload, counted already
        self._top = self.rate or self._sent_up_to(ticket.started)
        self.rate = max(MIN_RATE, BETA * self._top)
        self.decreases += 1
        self._next = self._paused_until
        self._changed, self._held = max(now, self._paused_until), False

    def _grow(self, now: float) -> None:
        if self.rate and self._held and now - self._changed >= GROW_EVERY:
            self.rate += STEP * self._top
            self._changed, self._held = now, False
            if self.rate >= FORGET * self._top:
                self.rate = None

    def _record(self, at: float) -> None:
        self._starts.append(at)
        while self._starts[0] < at - 2.0:
            self._starts.popleft()

    def _sent_up_to(self, started: float) -> float:
        """Requests started in the second up to the refused one: the rate it was refused at, before
        any pacing. (Not the second up to now: the ones sent while its 429 travelled back, most of a
        burst of --concurrency, were not what the server had counted.)"""
        return max(1.0, sum(1 for t in self._starts if started - 1.0 < t <= started))
