"""The cost estimate (synth/estimate.py) and `generate --dry-run`: prompts rendered as the generators render
them, the yield measured from the cache's earlier runs, golden figures from known yields and prices, and
the command (a dry run sends nothing and writes nothing; a paid run prints the estimate first)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from typer.testing import CliRunner

from seedloop.cli import app
from synth.cache import RequestCache, RunRow
from synth.engine import Limits, TeacherClient
from synth.estimate import DEFAULT_OUTPUT_SHARE, DEFAULT_YIELD_SHARE, SINGLE_RUN_SPREAD, estimate_run, slot_shape
from synth.evol_instruct import EVOLVE_MAX_TOKENS
from synth.generate import generate_async, run_generate
from synth.prices import Price, PriceTable
from synth.seeds import load_seeds
from synth.teachers.base import Completion, Teacher
from tests.conftest import EXAMPLE_SEEDS
from tests.fakes import answer_for

SEEDS = load_seeds(EXAMPLE_SEEDS)
PRICES = PriceTable({"openai:recorder": Price(input=2.0, output=8.0), "local:*": Price(0, 0)})


class RecordingTeacher(Teacher):
    """Answers in-process as the fake server does, and keeps every request it is sent."""
    provider, model = "openai", "recorder"

    def __init__(self):
        self.requests = []

    async def complete(self, request):
        self.requests.append(request)
        text = answer_for("\n".join(c for _, c in request.messages), random.Random(str(request.messages)))
        return Completion(text=text, input_tokens=request.estimated_input_tokens(), output_tokens=len(text) // 4)


def is_first(request, method: str) -> bool:
    """A slot's first request: Self-Instruct's task list, Evol-Instruct's rewrite."""
    if method == "self-instruct":
        return "series of tasks" in request.messages[0][1]
    return request.max_tokens == EVOLVE_MAX_TOKENS


@pytest.mark.parametrize("method", ["self-instruct", "evol-instruct"])
def test_the_first_prompts_are_the_ones_the_generator_sends(method, tmp_path):
    teacher = RecordingTeacher()
    client = TeacherClient(teacher, RequestCache(tmp_path / "c.sqlite"), limits=Limits(concurrency=4))
    asyncio.run(generate_async(SEEDS, client, n=4, method=method, seed=7))
    sent = [r.messages for r in teacher.requests if is_first(r, method)]
    shape = slot_shape(SEEDS.to_dicts(), method, "openai", seed=7, window=4)
    rendered = [r.messages for r in shape.requests if is_first(r, method)]
    # slots start in order, and each sends its first request before it awaits anything
    assert len(sent) >= 4 and sent[:4] == rendered[:4]


def test_nothing_measured_gives_the_default_share_of_the_best_case():
    est = estimate_run(SEEDS, "evol-instruct", 100, "openai:recorder", PRICES)
    shape = slot_shape(SEEDS.to_dicts(), "evol-instruct", "openai")
    assert shape.best_yield == 0.5   # an evolution and its answer make one record
    assert est.requests_low == math.ceil(100 / (DEFAULT_YIELD_SHARE[1] * 0.5))
    assert est.requests_high == math.ceil(100 / (DEFAULT_YIELD_SHARE[0] * 0.5))
    assert est.completion_tokens_low == round(est.requests_low * DEFAULT_OUTPUT_SHARE * shape.max_tokens)
    assert est.completion_tokens_high == round(est.requests_high * shape.max_tokens)
    assert est.prompt_tokens_low == round(est.requests_low * shape.prompt_tokens)
    assert "nothing measured" in est.basis and est.paid


def test_the_yield_of_earlier_runs_sets_the_range(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    for run in [RunRow("a", "self-instruct", 1, "openai:recorder", 40, 100, 100, 9000),   # replaced below
                RunRow("a", "self-instruct", 1, "openai:recorder", 40, 80, 80, 8000),      # yield 0.5
                RunRow("b", "self-instruct", 1, "openai:recorder", 40, 50, 20, 3000),      # yield 0.8
                RunRow("c", "evol-instruct", 1, "openai:recorder", 1, 1000, 1000, 1),      # other method
                RunRow("d", "self-instruct", 3, "openai:recorder", 1, 1000, 1000, 1),      # other turns
                RunRow("e", "self-instruct", 1, "openai:other", 1, 1000, 1000, 1)]:         # other teacher
        cache.record_run(run)
    est = estimate_run(SEEDS, "self-instruct", 100, "openai:recorder", PRICES, cache)
    assert (est.requests_low, est.requests_high) == (125, 200)
    assert est.completion_tokens_low == round(125 * (8000 + 3000) / (80 + 20))   # the measured mean output
    assert est.dollars_low == pytest.approx(PRICES.get("openai:recorder").cost(est.prompt_tokens_low,
                                                                               est.completion_tokens_low))
    assert est.dollars_high == pytest.approx((est.prompt_tokens_high * 2 + est.completion_tokens_high * 8) / 1e6)
    assert "measured on 2 earlier runs: 0.50-0.80" in est.basis
    one = RequestCache(tmp_path / "one.sqlite")
    one.record_run(RunRow("a", "self-instruct", 1, "openai:recorder", 40, 80, 80, 8000))
    single = estimate_run(SEEDS, "self-instruct", 100, "openai:recorder", PRICES, one)
    assert single.requests_low == math.ceil(100 / (0.5 * (1 + SINGLE_RUN_SPREAD)))
    assert single.requests_high == math.ceil(100 / (0.5 * (1 - SINGLE_RUN_SPREAD)))


def test_local_teachers_cost_nothing_and_an_unpriced_one_is_unknown():
    local = estimate_run(SEEDS, "self-instruct", 10, "local", PRICES)
    assert (local.dollars_low, local.dollars_high) == (0.0, 0.0) and not local.paid
    assert any("costs $0" in note for note in local.notes)
    unpriced = estimate_run(SEEDS, "self-instruct", 10, "openai:gpt-unknown", PRICES)
    assert unpriced.dollars_low is None and "no price for 'openai:gpt-unknown'" in unpriced.notes[0]


def test_a_budget_below_the_low_estimate_is_named():
    est = estimate_run(SEEDS, "self-instruct", 1000, "openai:recorder", PRICES, max_cost=0.001)
    assert any(note.startswith("--max-cost $0.001 is below the low estimate") for note in est.notes)


def test_run_generate_records_what_the_run_made(tmp_path):
    teacher = RecordingTeacher()
    for _ in range(2):   # the second run is answered from the cache
        result = run_generate(SEEDS, n=5, teacher=teacher, cache=tmp_path / "c.sqlite", job="j", limits=Limits(2))
    cache = RequestCache(tmp_path / "c.sqlite")
    (run,) = cache.runs("self-instruct", "openai:recorder")   # the latest run of the job
    assert (run.records, run.requests, run.sent) == (5, len(teacher.requests), 0)
    assert result.stats.cached == len(teacher.requests)


def cli(*args, **env):
    return CliRunner().invoke(app, ["generate", "--seeds", str(EXAMPLE_SEEDS), *map(str, args)],
                              env={"COLUMNS": "200", "HF_HUB_OFFLINE": "1", **env})


def test_dry_run_sends_nothing_and_writes_nothing(fake_llm, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)   # it builds no teacher, so it needs no key
    res = cli("--out", tmp_path / "out.parquet", "--teacher", "openai:fake", "--base-url", fake_llm.url,
              "--cache", tmp_path / "cache.sqlite", "--n", 50, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "estimate: 50 records, self-instruct, openai:fake" in res.stdout and "unknown" in res.stdout
    assert fake_llm.seen == [] and list(tmp_path.iterdir()) == []


def test_a_paid_run_prints_the_estimate_first_and_teaches_the_next_one(fake_llm, tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai:fake: {input: 1.0, output: 2.0}\n")
    common = ("--teacher", "openai:fake", "--base-url", fake_llm.url, "--cache", tmp_path / "c.sqlite",
              "--prices", prices, "--n", 8, "--concurrency", 4)
    res = cli("--out", tmp_path / "out.parquet", *common, OPENAI_API_KEY="sk-test-0123456789")
    assert res.exit_code == 0, res.output
    assert res.stderr.index("estimate: 8 records") < res.stderr.index("records written")
    assert "nothing measured" in res.stderr
    sent = len(fake_llm.seen)
    dry = cli("--out", tmp_path / "other.parquet", *common, "--dry-run")
    assert dry.exit_code == 0 and "measured on 1 earlier run" in dry.stdout and len(fake_llm.seen) == sent
    est = estimate_run(SEEDS, "self-instruct", 8, "openai:fake", PriceTable.load(prices),
                       RequestCache(tmp_path / "c.sqlite"), window=4)
    assert est.requests_low <= sent <= est.requests_high
