"""The request engine: a teacher behind the cache, a concurrency cap, rate limits, retries and a budget.

`TeacherClient.complete` is all a strategy calls. A cached request returns at once and costs
nothing; two identical requests in flight are sent once; transient failures (429, 5xx, timeouts,
dropped connections, malformed bodies) are retried with exponential backoff and full jitter,
never sooner than the server's Retry-After. Unless `adaptive` is off, 429s also set the pace of
every request: synth/adaptive.py finds the server's rate limit, so nobody has to tune `--rpm`.
`--max-cost` is enforced before sending: each request reserves its worst case (estimated prompt +
max_tokens), so the budget is never passed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

from seedloop.core.errors import BudgetExceeded, ConfigError, TeacherError
from synth.adaptive import AdaptiveRate, Ticket
from synth.cache import RequestCache
from synth.inflight import REQUEST_PRIORITY, PrioritySemaphore
from synth.prices import Price, PriceTable
from synth.teachers.base import ChatRequest, Completion, Teacher, TransientError, cache_key


@dataclass
class Limits:
    concurrency: int = 8
    rpm: float | None = None       # requests per minute
    tpm: float | None = None       # tokens per minute (prompt estimate + max_tokens)
    max_retries: int = 5
    backoff: float = 0.5           # seconds before the first retry; doubles each time
    max_backoff: float = 60.0
    adaptive: bool = True          # find the rate limit from 429s (synth/adaptive.py); concurrency is the cap

    def __post_init__(self) -> None:
        # zero requests in flight would wait forever with nothing on screen; a zero rate never sends
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries cannot be negative, got {self.max_retries}")
        for name in ("rpm", "tpm"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be more than 0, got {getattr(self, name)}")


@dataclass
class Stats:
    sent: int = 0
    cached: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    errors: Counter = field(default_factory=Counter)
    adaptive_rate: float | None = None   # requests/s the adaptive pacer was at last; None: not pacing


class TeacherClient:
    def __init__(self, teacher: Teacher, cache: RequestCache, *, limits: Limits | None = None,
                 prices: PriceTable | None = None, max_cost: float | None = None, job: str = "default",
                 rng: random.Random | None = None):
        self.teacher, self.cache, self.job = teacher, cache, job
        self.limits = limits or Limits()
        prices = prices or PriceTable.load()
        self.price: Price | None = prices.require(teacher.spec) if max_cost is not None else prices.get(teacher.spec)
        self.max_cost = max_cost
        self.stats = Stats()
        self._sem = PrioritySemaphore(self.limits.concurrency)   # the earliest slot's request first
        self._rpm = AsyncLimiter(self.limits.rpm, 60) if self.limits.rpm else None
        self._tpm = AsyncLimiter(self.limits.tpm, 60) if self.limits.tpm else None
        self._adaptive = AdaptiveRate() if self.limits.adaptive else None
        self._inflight: dict[str, asyncio.Task] = {}   # by cache key: a twin request shares the first's
        self._sending: set[str] = set()                 # keys past the concurrency cap, out to the server
        self._spent = cache.spent(job)  # earlier runs of the same job count against the budget
        self._reserved = 0.0
        self._rng = rng or random.Random()

    @property
    def spec(self) -> str:
        return self.teacher.spec

    @property
    def spent(self) -> float:
        return self._spent

    async def complete(self, request: ChatRequest) -> Completion:
        key = cache_key(self.teacher.provider, self.teacher.model, request, self.teacher.endpoint)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cached += 1
            return hit
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._send(key, request, REQUEST_PRIORITY.get()))
            self._inflight[key] = task
            task.add_done_callback(lambda _, k=key: self._inflight.pop(k, None))
        else:
            self.stats.cached += 1   # a twin: it shares the first one's answer, sent once
        # shielded: a caller cancelled while its request is out (the run has its records) does not
        # throw the paid answer away; it still lands in the cache, and `drain` waits for it
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """At the end of a run: requests not sent yet are cancelled, those already out land in the cache."""
        for key, task in list(self._inflight.items()):
            if key not in self._sending:
                task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def _send(self, key: str, request: ChatRequest, priority: int) -> Completion:
        await self._sem.acquire(priority)
        self._sending.add(key)
        try:
            return await self._send_now(key, request)
        finally:
            self._sending.discard(key)
            self._sem.release()

    async def _send_now(self, key: str, request: ChatRequest) -> Completion:
        """Under the concurrency cap: reserve the worst cost, send with retries, cache and count."""
        estimate = request.estimated_input_tokens()
        worst = self.price.cost(estimate, request.max_tokens) if self.price else 0.0
        if self.max_cost is not None and self._spent + self._reserved + worst > self.max_cost:
            raise BudgetExceeded(f"the next request could cost up to ${worst:.4f}, which would pass "
                                 f"--max-cost ${self.max_cost:.2f} (spent ${self._spent:.4f})")
        self._reserved += worst
        try:
            result = await self._attempts(request, estimate + request.max_tokens)
        finally:
            self._reserved -= worst
        cost = self.price.cost(result.input_tokens, result.output_tokens) if self.price else 0.0
        self.cache.put(key, self.teacher.provider, self.teacher.model, request, result, cost, self.job,
                       self.teacher.endpoint)
        self._spent += cost
        s = self.stats
        s.sent += 1
        s.input_tokens += result.input_tokens
        s.output_tokens += result.output_tokens
        s.cost += cost
        return result

    async def _attempts(self, request: ChatRequest, tokens: int) -> Completion:
        lim = self.limits
        for attempt in range(lim.max_retries + 1):
            if self._rpm:
                await self._rpm.acquire()
            if self._tpm:
                await self._tpm.acquire(min(tokens, self._tpm.max_rate))
            ticket = await self._turn()
            try:
                return await self.teacher.complete(request)
            except TransientError as exc:
                self.stats.errors[str(exc)] += 1
                if ticket is not None and _rate_limited(exc):
                    self._adaptive.rate_limited(ticket, exc.retry_after)
                if attempt == lim.max_retries:
                    raise TeacherError(f"{self.spec}: gave up after {attempt + 1} attempts; "
                                       f"last error: {exc}") from None
                self.stats.retries += 1
                delay = self._rng.uniform(0, min(lim.max_backoff, lim.backoff * 2 ** attempt))
                await asyncio.sleep(max(delay, exc.retry_after or 0.0))
        raise AssertionError("unreachable")

    async def _turn(self) -> Ticket | None:
        """Wait for the adaptive pacer, when it is on; its rate goes into the stats as it changes."""
        if self._adaptive is None:
            return None
        ticket = await self._adaptive.turn()
        self.stats.adaptive_rate = self._adaptive.rate
        return ticket


def _rate_limited(exc: TransientError) -> bool:
    # every teacher (and the Ray workers, which pass the message on) words a 429 this way; a 5xx is a
    # failure to retry, not a request to slow down
    return str(exc).startswith("HTTP 429")
