"""The LLM judge through real teachers: the packaged SmolLM2 in-process, and llama-cpp-python's
OpenAI-compatible server on 127.0.0.1. Judge calls share generation's request cache and ledger."""

import pytest

from curate.judge import judge_rows
from synth import RequestCache

ROWS = [
    {"instruction": "How do I report a lost card?", "input": "",
     "output": "Open the app, choose Cards, tap 'Report lost' and we send a new card in 3-5 days."},
    {"instruction": "What is the exchange rate fee?", "input": "", "output": "Bananas are yellow."},
    {"instruction": "Say hello.", "input": "", "output": None},   # nothing to judge
]


def _check(verdicts, cache, job, teacher):
    assert verdicts.skipped == 1 and verdicts.scores[2] is None
    for score, reason in zip(verdicts.scores[:2], verdicts.reasons[:2]):
        # a score on the rubric's scale, or a counted miss that keeps the judge's words
        assert (score is not None and 1 <= score <= 5) or reason.startswith("no score in the judge's answer")
    assert verdicts.unparseable == sum(s is None for s in verdicts.scores[:2])
    assert verdicts.template.startswith("curate/judge@") and verdicts.teacher == teacher
    store = RequestCache(cache)
    ledger = store.ledger(job)
    store.close()
    assert [(r.teacher, r.requests) for r in ledger] == [(teacher, 2)]


@pytest.mark.slow
def test_local_teacher_judges_and_a_rerun_is_served_from_the_cache(tmp_path):
    cache = tmp_path / "cache.sqlite"
    first = judge_rows(ROWS, teacher="local", cache=cache, job="curate:test")
    _check(first, cache, "curate:test", "local:smollm2-135m-instruct")
    assert first.stats["sent"] == 2
    again = judge_rows(ROWS, teacher="local", cache=cache, job="curate:test")
    assert again.stats["sent"] == 0 and again.stats["cached"] == 2
    assert again.scores == first.scores and again.reasons == first.reasons


@pytest.mark.slow
def test_openai_compatible_server_judges(llama_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cache = tmp_path / "cache.sqlite"
    verdicts = judge_rows(ROWS, teacher="openai:smollm2", base_url=llama_server, cache=cache, job="curate:srv")
    _check(verdicts, cache, "curate:srv", "openai:smollm2")
