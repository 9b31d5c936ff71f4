"""The priority semaphore (synth/inflight.py) and the end of a run (TeacherClient.drain): the earliest
slot's request goes first; a cancelled waiter never loses a place; requests already out are cached."""

from __future__ import annotations

import asyncio

from synth import ChatRequest, Limits, RequestCache, TeacherClient
from synth.inflight import PrioritySemaphore
from synth.teachers.openai import OpenAITeacher


def test_lowest_priority_number_goes_first_and_cancelled_waiters_pass_their_turn():
    async def run():
        sem, order = PrioritySemaphore(1), []
        await sem.acquire(0)                      # held, so everyone below waits

        async def take(priority, name):
            await sem.acquire(priority)
            order.append(name)
            sem.release()

        tasks = [asyncio.create_task(take(p, n)) for p, n in ((5, "late"), (1, "early"), (3, "cancelled"),
                                                              (1, "early-2"))]
        await asyncio.sleep(0)
        tasks[2].cancel()
        sem.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sem.acquire(9)                      # every place came back
        return order

    assert asyncio.run(run()) == ["early", "early-2", "late"]


def test_drain_caches_what_is_out_and_drops_what_is_not(fake_llm, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_llm.plan.latency = 0.3

    async def run():
        client = TeacherClient(OpenAITeacher("fake", base_url=fake_llm.url), RequestCache(tmp_path / "c.sqlite"),
                               limits=Limits(concurrency=2))
        requests = [ChatRequest.of([{"role": "user", "content": f"Say hi {i}."}], max_tokens=8) for i in range(5)]
        callers = [asyncio.create_task(client.complete(r)) for r in requests]
        await asyncio.sleep(0.1)                  # two are out, three wait
        for c in callers:
            c.cancel()                            # the run has what it needs
        await client.drain()
        await client.teacher.aclose()
        return client, requests

    client, requests = asyncio.run(run())
    assert client.stats.sent == 2 and len(fake_llm.seen) == 2
    cache = RequestCache(tmp_path / "c.sqlite")
    assert len(cache.ledger("default")) == 1 and cache.ledger("default")[0].requests == 2
