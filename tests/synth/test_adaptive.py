"""The adaptive rate (synth/adaptive.py): its rules on a virtual clock, then the engine against a fake
OpenAI server with a hidden limit of R requests in any second (answering 429 with Retry-After beyond
it, as APIs check their requests per minute over short windows): it must keep within 10% of R with
nothing lost, where the same run at a fixed concurrency is refused far more often."""

from __future__ import annotations

import asyncio
import time

import pytest

from synth import ChatRequest, Limits, RequestCache, TeacherClient
from synth.adaptive import BETA, FORGET, MIN_RATE, STEP, AdaptiveRate, Ticket
from synth.teachers.openai import OpenAITeacher
from tests.conftest import EXAMPLE_SEEDS, run_cli
from tests.fakes import FakeLLMServer, FaultPlan

R, LATENCY, CEILING = 40, 0.05, 32   # the ceiling alone would send 640 requests/s


class Clock:
    """Virtual time for one task at a time: sleeping moves the clock."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def paced(clock: Clock) -> AdaptiveRate:
    return AdaptiveRate(clock=clock, sleep=clock.sleep)


def test_nothing_is_paced_until_the_first_429():
    clock = Clock()
    pacer = paced(clock)
    starts = asyncio.run(_turns(pacer, 100))
    assert pacer.rate is None and [t.started for t in starts] == [100.0] * 100


def test_the_first_429_sets_the_rate_from_what_was_sent_in_the_second_before_the_refused_request():
    clock = Clock()
    pacer = paced(clock)
    for _ in range(50):              # 50 requests in half a second, the last one refused
        (refused,) = asyncio.run(_turns(pacer, 1))
        clock.now += 0.01
    asyncio.run(_turns(pacer, 30))   # a burst sent while the 429 travelled back: not what the server counted
    pacer.rate_limited(refused, retry_after=None)
    assert pacer.rate == pytest.approx(BETA * 50)


def test_a_burst_of_429s_from_one_overload_counts_once():
    clock = Clock()
    pacer = paced(clock)
    before = asyncio.run(_turns(pacer, 20))
    for ticket in before:            # all refused: one overload
        pacer.rate_limited(ticket, retry_after=0.5)
    assert pacer.decreases == 1 and pacer.rate == pytest.approx(BETA * 20)
    clock.now += 3
    (after,) = asyncio.run(_turns(pacer, 1))
    pacer.rate_limited(after, retry_after=0.5)   # refused at the lower rate too: lower again
    assert pacer.decreases == 2 and pacer.rate == pytest.approx(BETA * BETA * 20)


def test_retry_after_pauses_every_request_then_they_start_evenly_spaced():
    clock = Clock()
    pacer = paced(clock)
    (ticket,) = asyncio.run(_turns(pacer, 1))
    pacer.rate_limited(ticket, retry_after=2.0)    # rate: 0.9 requests/s
    first, second = (t.started for t in asyncio.run(_turns(pacer, 2)))
    assert first == pytest.approx(ticket.started + 2.0) and second - first == pytest.approx(1 / BETA)


def test_the_rate_grows_additively_while_it_holds_requests_back_and_not_otherwise():
    clock = Clock()
    pacer = paced(clock)
    before = asyncio.run(_turns(pacer, 10))
    pacer.rate_limited(before[-1], retry_after=None)
    asyncio.run(_turns(pacer, 100))               # a backlog: every request waits its turn
    steps = (pacer.rate - BETA * 10) / (STEP * 10)  # STEP of the rate the 429 was met at, once a second
    assert steps == pytest.approx(round(steps)) and 6 <= steps <= clock.now - before[-1].started
    clock.now += 3
    asyncio.run(_turns(pacer, 1))                  # (the step owed for the last second of the backlog)
    grown = pacer.rate
    for _ in range(5):                             # then one request every few seconds: the rate limits nothing
        clock.now += 3
        asyncio.run(_turns(pacer, 1))
    assert pacer.rate == grown


def test_pacing_stops_once_the_rate_is_well_past_the_last_429_without_another():
    clock = Clock()
    pacer = paced(clock)
    (ticket,) = asyncio.run(_turns(pacer, 1))   # a stray 429 while one request was going
    pacer.rate_limited(ticket, retry_after=None)
    assert pacer.rate == BETA
    asyncio.run(_turns(pacer, 30))              # a backlog the slow pace holds back, and no 429 in 30 s
    assert pacer.rate is None and (FORGET - BETA) / STEP < clock.now - ticket.started < 30 / BETA


def test_the_rate_never_drops_below_one_request_a_minute():
    clock = Clock()
    pacer = paced(clock)
    for _ in range(200):
        (ticket,) = asyncio.run(_turns(pacer, 1))
        pacer.rate_limited(ticket, retry_after=None)
    assert pacer.rate == MIN_RATE


async def _turns(pacer: AdaptiveRate, n: int) -> list[Ticket]:
    return [await pacer.turn() for _ in range(n)]


# -- against a server with a hidden limit -------------------------------------------------------

def ask(i: int) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": f"Say something about item {i}."}], max_tokens=16)


def drive(tmp_path, monkeypatch, n: int, **limits) -> tuple[FakeLLMServer, TeacherClient, list, float]:
    """n distinct requests at once through a TeacherClient; the server, client, results and start time."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-123")
    server = FakeLLMServer(FaultPlan(latency=LATENCY, rate_limit=R))
    client = TeacherClient(OpenAITeacher("fake", base_url=server.url), RequestCache(tmp_path / "cache.sqlite"),
                           limits=Limits(concurrency=CEILING, backoff=0.05, **limits))

    async def main():
        try:
            return await asyncio.gather(*(client.complete(ask(i)) for i in range(n)), return_exceptions=True)
        finally:
            await client.teacher.aclose()

    start = time.monotonic()
    try:
        return server, client, asyncio.run(main()), start
    finally:
        server.close()


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return drive(tmp_path_factory.mktemp("adaptive"), mp, n=10 * R)   # about 10 s at R


def test_finds_the_hidden_limit_and_loses_nothing(adaptive_run):
    server, client, results, start = adaptive_run
    assert not [r for r in results if isinstance(r, Exception)]
    answered = server.bodies("ok")
    assert len(answered) == len(set(answered)) == 10 * R == client.stats.sent   # each request answered once
    done = sorted(s.at - start for s in server.seen if s.outcome == "ok")
    # sustained: after 3 s of finding the limit, until the last second (when the backlog runs dry)
    steady = [t for t in done if 3.0 <= t < done[-1] - 1.0]
    rate = len(steady) / (done[-1] - 4.0)
    assert 0.9 * R <= rate <= 1.1 * R, f"{rate:.1f} requests/s against a limit of {R}"
    assert client.stats.adaptive_rate == pytest.approx(R, rel=0.2)


def test_a_fixed_concurrency_is_refused_far_more_often(adaptive_run, tmp_path, monkeypatch):
    server, client, results, _ = adaptive_run
    adaptive_refusals = server.outcomes()["429"] / len(results)
    assert adaptive_refusals < 0.15
    fixed, _, fixed_results, _ = drive(tmp_path, monkeypatch, n=3 * R, adaptive=False, max_retries=30)
    assert fixed.outcomes()["429"] / len(fixed_results) > 5 * adaptive_refusals


def test_generate_prints_the_rate_it_found(tmp_path):
    server = FakeLLMServer(FaultPlan(rate_limit=20))
    try:
        res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", 4, "--out", tmp_path / "out.parquet",
                      "--teacher", "openai:fake", "--base-url", server.url, "--cache", tmp_path / "c.sqlite",
                      "--concurrency", 8, env={"OPENAI_API_KEY": "sk-test-0123456789"})
    finally:
        server.close()
    assert res.returncode == 0, res.stderr
    assert server.outcomes()["429"] and "adaptive rate (from 429s)" in res.stderr
