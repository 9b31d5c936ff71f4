"""Generation with the teacher on Ray workers, against real local servers: the fake OpenAI/Anthropic
server (answers are a pure function of the request, every arrival is counted and timed) and the
real llama-cpp-python server. Each compares with the local executor, row by row."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from seedloop.core.errors import ConfigError
from seedloop.core.tables import read_table
from synth import ChatRequest, Limits, PriceTable, RequestCache, TeacherClient, load_seeds, make_teacher
from synth.generate import run_generate
from tests.conftest import EXAMPLE_SEEDS, run_cli

pytestmark = pytest.mark.slow
KEY = "sk-test-ray-secret-0123456789"


def _ray_teacher(spec, url, workers=2):
    from seedloop.executors.ray_generate import RayTeacher

    return RayTeacher(spec, base_url=url, workers=workers)


def _ledger(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, request, cost FROM requests").fetchall()


def _generate(teacher, cache, prices, n=12, concurrency=4, **options):
    return run_generate(load_seeds(EXAMPLE_SEEDS), n=n, teacher=teacher, cache=cache, job="gen", prices=prices,
                        limits=Limits(concurrency=concurrency, backoff=0.05), **options)


def test_same_rows_as_local_each_request_sent_once(ray_cluster, fake_llm, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    (tmp_path / "prices.yaml").write_text("openai:fake: {input: 2000, output: 2000}\n")
    prices = PriceTable.load(tmp_path / "prices.yaml")
    local = _generate(make_teacher("openai:fake", base_url=fake_llm.url), tmp_path / "local.sqlite", prices)
    fake_llm.seen.clear()
    fake_llm.plan.faults = ["429", "500", "malformed"]   # retried from the driver, through the workers
    fake_llm.plan.retry_after = 0.1
    fake_llm.plan.latency = 0.02
    teacher = _ray_teacher("openai:fake", fake_llm.url)
    on_ray = _generate(teacher, tmp_path / "ray.sqlite", prices)

    assert on_ray.records.equals(local.records) and len(on_ray.records) == 12
    sent = fake_llm.bodies("ok")
    assert len(sent) == len(set(sent)), "a request was sent twice"
    # once 12 records are in, the scheduler cancels the slots still running, but the requests they have
    # out are answered and recorded (TeacherClient.drain): nothing the server answered is thrown away
    assert on_ray.stats.sent == len(sent)
    assert on_ray.stats.retries == 3
    assert all(len(log) > 0 for log in teacher.send_log), "every worker should have sent requests"
    ledger = _ledger(tmp_path / "ray.sqlite")
    assert len(ledger) == on_ray.stats.sent                              # every answer received is in the ledger
    assert sum(r[2] for r in ledger) == pytest.approx(on_ray.spent) and on_ray.spent > 0
    # the same questions as locally, except those of slots past the last one the output needed, which
    # each run had sent when its records were in (timing decides which: up to a window of 4 slots a side)
    local_asked, ray_asked = {r[1] for r in _ledger(tmp_path / "local.sqlite")}, {r[1] for r in ledger}
    assert len(local_asked & ray_asked) >= 20 and len(local_asked ^ ray_asked) <= 16

    # a re-run finds every answer it keeps in the cache and pays for nothing twice. Like the first run, it
    # starts slots past the ones its output needs, and may send (and record) requests of theirs that the
    # first run had not sent yet: at most `concurrency` of them
    before = len(fake_llm.bodies("ok"))
    rerun = _ray_teacher("openai:fake", fake_llm.url)
    again = _generate(rerun, tmp_path / "ray.sqlite", prices)
    assert again.records.equals(local.records) and again.stats.sent <= 4
    assert len(fake_llm.bodies("ok")) == before + again.stats.sent
    assert len(set(fake_llm.bodies("ok"))) == len(fake_llm.bodies("ok")), "a request was sent twice"


def test_rate_limit_is_global_across_workers(ray_cluster, fake_llm, tmp_path):
    """12 requests a minute: a leaky bucket of 12 lets the first 12 through at once, then one every
    5 s. A limit per worker (2 workers) would let all 14 through at once."""
    teacher = _ray_teacher("openai:fake", fake_llm.url)
    requests = [ChatRequest.of([{"role": "user", "content": f"Say hello number {i}."}], max_tokens=8, seed=i)
                for i in range(14)]

    async def main():
        client = TeacherClient(teacher, RequestCache(tmp_path / "c.sqlite"), limits=Limits(concurrency=16, rpm=12))
        try:
            return await asyncio.gather(*(client.complete(r) for r in requests))
        finally:
            await teacher.aclose()

    assert len(asyncio.run(main())) == 14
    at = sorted(s.at for s in fake_llm.seen)
    assert len(at) == 14
    assert at[11] - at[0] < 3.0
    assert at[12] - at[0] > 4.5 and at[13] - at[0] > 9.5
    assert all(len(log) > 0 for log in teacher.send_log)


def test_key_reaches_workers_and_never_shows(ray_cluster, fake_llm, tmp_path, monkeypatch):
    """The fake Anthropic endpoint answers 401 without a key; the cluster was started without one, so
    only seedloop can have handed it over. It must not appear in reprs or the cluster's logs."""
    from seedloop.executors.ray_generate import TeacherRecipe

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    teacher = _ray_teacher("anthropic:fake", fake_llm.anthropic_url, workers=1)
    request = ChatRequest.of([{"role": "user", "content": "Say hello."}], max_tokens=8)

    async def main():
        client = TeacherClient(teacher, RequestCache(tmp_path / "c.sqlite"))
        try:
            return await client.complete(request)
        finally:
            await teacher.aclose()

    assert asyncio.run(main()).text
    assert fake_llm.outcomes()["ok"] == 1
    shown = repr(teacher) + repr(TeacherRecipe.from_env("anthropic:fake")) + str(TeacherRecipe.from_env("anthropic:x"))
    assert "Secret('***')" in shown and KEY not in shown
    assert KEY not in ray_cluster.log_text()
    assert KEY.encode() not in (tmp_path / "c.sqlite").read_bytes()


def test_missing_key_fails_before_any_work(ray_cluster, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        _ray_teacher("openai:gpt-4o-mini", None)


def test_cli_generate_on_ray_within_budget(ray_cluster, fake_llm, tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:fake: {input: 2000, output: 2000}\n")
    out = tmp_path / "out.parquet"
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", 30, "--out", out, "--teacher", "openai:fake",
                  "--base-url", fake_llm.url, "--cache", tmp_path / "c.sqlite", "--concurrency", 4,
                  "--max-cost", "8.0", "--prices", prices, "--executor", "ray", "--ray-address", ray_cluster.address,
                  env={"OPENAI_API_KEY": KEY})
    assert res.returncode == 0, res.stderr
    assert "stopped at the budget" in res.stderr and "RayTeacher('openai:fake'" in res.stderr
    assert KEY not in res.stdout + res.stderr
    df = read_table(out)
    assert 0 < len(df) < 30 and df["id"].n_unique() == len(df)
    ledger = _ledger(tmp_path / "c.sqlite")
    assert sum(r[2] for r in ledger) <= 8.0
    assert len(ledger) == len(fake_llm.bodies("ok")) == len(set(fake_llm.bodies("ok")))
    assert KEY not in ray_cluster.log_text()


def test_real_llama_server_same_rows_as_local(ray_cluster, llama_server, tmp_path):
    # one evolved record: a few requests, since the server writes about 100 tokens/s here
    options = dict(n=1, concurrency=1, method="evol-instruct")   # one request at a time: same ledger too
    prices = PriceTable.load()
    local = _generate(make_teacher("openai:smollm2", base_url=llama_server), tmp_path / "local.sqlite", prices,
                      **options)
    on_ray = _generate(_ray_teacher("openai:smollm2", llama_server), tmp_path / "ray.sqlite", prices, **options)
    assert len(on_ray.records) == 1 and on_ray.records["id"].to_list() == local.records["id"].to_list()
    assert on_ray.records.equals(local.records)
    ledger = _ledger(tmp_path / "ray.sqlite")
    assert len(ledger) == on_ray.stats.sent == len({r[1] for r in ledger})      # no request twice
    assert {r[1] for r in ledger} == {r[1] for r in _ledger(tmp_path / "local.sqlite")}
