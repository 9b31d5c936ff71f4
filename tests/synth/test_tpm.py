"""--tpm against the fake OpenAI server: the engine's tokens-per-minute limiter is a leaky bucket holding one
minute's tokens, each request counting its prompt estimate plus max_tokens; past the bucket, a request waits
until enough has drained. A request larger than a whole minute's budget is capped to it, so it is still sent.
Times are the server's receive times, on the same monotonic clock as the test."""

from __future__ import annotations

import asyncio
import time

from synth import ChatRequest, Limits, RequestCache, TeacherClient
from synth.teachers.openai import OpenAITeacher


def ask(i: int, max_tokens: int) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": f"Come up with an example for each task. #{i:02d}"}],
                          max_tokens=max_tokens)


def send(server, tmp_path, monkeypatch, requests: list[ChatRequest], tpm: float) -> float:
    """Send every request at once under `tpm`; returns the monotonic time just before."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-123")
    teacher = OpenAITeacher("fake", base_url=server.url)
    client = TeacherClient(teacher, RequestCache(tmp_path / "cache.sqlite"), limits=Limits(concurrency=8, tpm=tpm))

    async def main():
        try:
            await asyncio.gather(*(client.complete(r) for r in requests))
        finally:
            await teacher.aclose()

    start = time.monotonic()
    asyncio.run(main())
    return start


def test_requests_past_a_minutes_tokens_wait_until_the_bucket_drains(fake_llm, tmp_path, monkeypatch):
    requests = [ask(i, 96) for i in range(6)]
    size = requests[0].estimated_input_tokens() + 96   # what each request counts against --tpm
    tpm = 5.854 * size
    # five fit at once; the sixth waits for (6 size - tpm) tokens to drain at tpm/60 a second: 1.5 s
    sixth_earliest = (6 * size - tpm) * 60 / tpm
    start = send(fake_llm, tmp_path, monkeypatch, requests, tpm)
    arrived = sorted(s.at - start for s in fake_llm.seen)
    assert len(arrived) == 6 and fake_llm.outcomes() == {"ok": 6}
    assert max(arrived[:5]) < sixth_earliest                     # the first five were not held back
    assert sixth_earliest - 0.05 <= arrived[5] < sixth_earliest + 3   # the sixth was, about as long as needed


def test_a_request_larger_than_a_minutes_budget_is_still_sent(fake_llm, tmp_path, monkeypatch):
    big = ask(0, 1000)
    assert big.estimated_input_tokens() + big.max_tokens > 100
    start = send(fake_llm, tmp_path, monkeypatch, [big], tpm=100)
    assert fake_llm.outcomes() == {"ok": 1} and fake_llm.seen[0].at - start < 5   # capped to the bucket: no wait
