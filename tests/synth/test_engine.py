"""The request engine against a local server speaking the OpenAI / Anthropic wire formats:
retries, Retry-After, timeouts, malformed bodies, the cache, the concurrency cap, the budget."""

from __future__ import annotations

import asyncio
import time

import pytest

from seedloop.core.errors import BudgetExceeded, ConfigError, TeacherError
from synth import ChatRequest, Limits, PriceTable, RequestCache, TeacherClient
from synth.prices import Price
from synth.teachers.anthropic import AnthropicTeacher
from synth.teachers.openai import OpenAITeacher

FAST = Limits(concurrency=4, max_retries=3, backoff=0.01)


def ask(i: int = 0, **kw) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": f"Come up with an example for each task. #{i}"}], **kw)


def client_for(server, tmp_path, monkeypatch, limits=FAST, **kw) -> TeacherClient:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-123")
    teacher = OpenAITeacher("fake", base_url=server.url, timeout=kw.pop("timeout", 30))
    return TeacherClient(teacher, RequestCache(tmp_path / "cache.sqlite"), limits=limits, **kw)


def run(client: TeacherClient, make):
    """`make()` builds the coroutine inside the loop; the teacher's HTTP session is closed after."""
    async def main():
        try:
            return await make()
        finally:
            await client.teacher.aclose()
    return asyncio.run(main())


def test_429_waits_at_least_retry_after(fake_llm, tmp_path, monkeypatch):
    fake_llm.plan.faults = ["429"]
    fake_llm.plan.retry_after = 1.0
    client = client_for(fake_llm, tmp_path, monkeypatch)
    start = time.monotonic()
    result = run(client, lambda: client.complete(ask()))
    assert time.monotonic() - start >= 1.0  # backoff alone would be ~0.01 s
    assert result.text.startswith("Input:")
    assert fake_llm.outcomes() == {"429": 1, "ok": 1}
    assert client.stats.retries == 1 and client.stats.sent == 1


def test_500_and_malformed_body_are_retried(fake_llm, tmp_path, monkeypatch):
    fake_llm.plan.faults = ["500", "malformed", "500"]
    client = client_for(fake_llm, tmp_path, monkeypatch)
    assert run(client, lambda: client.complete(ask())).text
    assert fake_llm.outcomes() == {"500": 2, "malformed": 1, "ok": 1}
    assert client.stats.retries == 3


def test_slow_response_times_out_and_is_retried(fake_llm, tmp_path, monkeypatch):
    fake_llm.plan.faults = ["slow"]
    fake_llm.plan.slow_seconds = 5
    client = client_for(fake_llm, tmp_path, monkeypatch, timeout=0.5)
    start = time.monotonic()
    assert run(client, lambda: client.complete(ask())).text
    assert time.monotonic() - start < 4  # did not wait for the slow answer
    assert fake_llm.outcomes()["ok"] == 1


def test_gives_up_with_a_clear_error_that_hides_the_key(fake_llm, tmp_path, monkeypatch):
    fake_llm.plan.faults = ["500"] * 10
    client = client_for(fake_llm, tmp_path, monkeypatch, limits=Limits(max_retries=2, backoff=0.01))
    with pytest.raises(TeacherError, match=r"gave up after 3 attempts; last error: HTTP 500") as exc:
        run(client, lambda: client.complete(ask()))
    assert "sk-test" not in str(exc.value)


def test_auth_error_is_not_retried_and_the_key_stays_secret(fake_llm, tmp_path, monkeypatch):
    fake_llm.plan.faults = ["401"]
    client = client_for(fake_llm, tmp_path, monkeypatch)
    with pytest.raises(TeacherError, match="HTTP 401: invalid api key") as exc:
        run(client, lambda: client.complete(ask()))
    assert "sk-test" not in str(exc.value)
    assert fake_llm.outcomes() == {"401": 1}
    assert b"sk-test" not in (tmp_path / "cache.sqlite").read_bytes()


def test_cache_answers_the_second_time_and_twins_are_sent_once(fake_llm, tmp_path, monkeypatch):
    client = client_for(fake_llm, tmp_path, monkeypatch)

    async def twice():
        return await asyncio.gather(client.complete(ask(1)), client.complete(ask(1)))

    a, b = run(client, twice)
    assert a.text == b.text and len(fake_llm.seen) == 1
    again = client_for(fake_llm, tmp_path, monkeypatch)  # a new run, the same cache file
    assert run(again, lambda: again.complete(ask(1))).text == a.text
    assert len(fake_llm.seen) == 1 and again.stats.cached == 1 and again.stats.sent == 0


def test_concurrency_cap(fake_llm, tmp_path, monkeypatch):
    fake_llm.plan.latency = 0.2
    client = client_for(fake_llm, tmp_path, monkeypatch, limits=Limits(concurrency=3))

    async def many():
        return await asyncio.gather(*(client.complete(ask(i)) for i in range(12)))

    run(client, many)
    assert fake_llm.max_in_flight == 3 and len(fake_llm.seen) == 12


def test_budget_stops_before_it_is_passed(fake_llm, tmp_path, monkeypatch):
    prices = PriceTable({"openai:fake": Price(input=1000.0, output=1000.0)})  # $0.001 a token
    client = client_for(fake_llm, tmp_path, monkeypatch, limits=Limits(concurrency=1), prices=prices,
                        max_cost=0.5, job="j")
    done = []

    async def spend():
        for i in range(100):
            await client.complete(ask(i, max_tokens=64))
            done.append(i)

    with pytest.raises(BudgetExceeded, match="would pass --max-cost"):
        run(client, spend)
    assert 1 <= len(done) < 100
    assert client.spent <= 0.5
    # a re-run of the same job starts from what it already spent
    again = client_for(fake_llm, tmp_path, monkeypatch, prices=prices, max_cost=0.5, job="j")
    assert again.spent == pytest.approx(client.spent)


def test_budget_needs_a_price():
    with pytest.raises(ConfigError, match="no price for teacher 'openai:unknown-model'"):
        PriceTable.load().require("openai:unknown-model")


def test_missing_keys_name_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        OpenAITeacher("gpt-4o-mini")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicTeacher("claude-haiku-4-5")


def test_anthropic_wire_format_and_prefill(fake_llm, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret")
    teacher = AnthropicTeacher("claude-haiku-4-5", base_url=fake_llm.anthropic_url)
    client = TeacherClient(teacher, RequestCache(tmp_path / "c.sqlite"), limits=FAST)
    req = ChatRequest.of([{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Come up with an example for each task."},
                          {"role": "assistant", "content": "Task: Say hi.\nInput:"}], max_tokens=50)
    async def both():
        first = await client.complete(req)
        fake_llm.plan.faults = ["429"]
        fake_llm.plan.retry_after = 0.2
        return first, await client.complete(ask(7))

    result, second = run(client, both)
    body = fake_llm.seen[0].body
    assert body["system"] == "Be brief." and body["max_tokens"] == 50
    assert body["messages"][-1] == {"role": "assistant", "content": "Task: Say hi.\nInput:"}
    assert result.text.startswith(" none\nOutput:")  # continued after the prefill
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert second.text and fake_llm.outcomes()["429"] == 1
