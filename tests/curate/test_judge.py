"""The LLM judge through real teachers: the packaged SmolLM2 in-process, and llama-cpp-python's
OpenAI-compatible server on 127.0.0.1; and through the real OpenAI and Anthropic SDKs against the fake
server, whose verdicts are known in advance. Judge calls share generation's request cache and ledger.

SmolLM2-135M is started at "Score:" in-process (a prefill) and gives a number there. Through a chat
API there is no prefill, and it answers prose with no score; that server test checks the path and
that the misses are counted with the model's words, and the fake-server tests check the parsing.
"""

import json
import re
import sqlite3

import pytest

from curate.judge import judge_rows
from synth import RequestCache
from tests.fakes import judge_score

ROWS = [
    {"instruction": "How do I report a lost card?", "input": "",
     "output": "Open the app, choose Cards, tap 'Report lost' and we send a new card in 3-5 days."},
    {"instruction": "What is the exchange rate fee?", "input": "", "output": "Bananas are yellow."},
    {"instruction": "Say hello.", "input": "", "output": None},   # nothing to judge
]


def _answers(cache, job) -> dict[str, str]:
    """The teacher's raw answers, from the request cache, by the response each one judged."""
    with sqlite3.connect(cache) as db:
        rows = db.execute("SELECT request, text FROM requests WHERE job = ?", (job,)).fetchall()
    judged = (re.search(r"^Response: (.*)$", json.loads(req)["messages"][1]["content"], re.M) for req, _ in rows)
    return {m.group(1): text for m, (_, text) in zip(judged, rows)}


def _check(verdicts, cache, job, teacher):
    assert verdicts.skipped == 1 and verdicts.scores[2] is None and verdicts.reasons[2] is None
    answers = _answers(cache, job)
    assert sorted(answers) == sorted(r["output"] for r in ROWS[:2])
    for row, score, reason in zip(ROWS[:2], verdicts.scores, verdicts.reasons):
        # a score on the rubric's scale, or a counted miss that quotes what the judge said
        if score is None:
            assert answers[row["output"]].strip() and reason == (
                f"no score in the judge's answer: {answers[row['output']].strip()[:200]!r}")
        else:
            assert 1 <= score <= 5 and reason
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
    # started at "Score:", the model goes on with a number: both rows get it as their score
    assert first.unparseable == 0 and None not in first.scores[:2]
    answers = _answers(cache, "curate:test")
    for row, score in zip(ROWS[:2], first.scores):
        lead = re.match(r"\s*(\d+(?:\.\d+)?)", answers[row["output"]])
        assert lead and float(lead.group(1)) == score, (answers, first.scores)
    again = judge_rows(ROWS, teacher="local", cache=cache, job="curate:test")
    assert again.stats["sent"] == 0 and again.stats["cached"] == 2
    assert again.scores == first.scores and again.reasons == first.reasons


@pytest.mark.slow
def test_openai_compatible_server_judges(llama_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cache = tmp_path / "cache.sqlite"
    verdicts = judge_rows(ROWS, teacher="openai:smollm2", base_url=llama_server, cache=cache, job="curate:srv")
    _check(verdicts, cache, "curate:srv", "openai:smollm2")


# the fake judge's verdicts on these outputs: high, low and no score (tests/fakes.py judge_score)
FAKE_ROWS = [{"instruction": f"Explain fee number {i}.", "input": "",
              "output": f"The fee for transfer {i} is two euros."} for i in range(10)]


@pytest.mark.parametrize("teacher", ["openai:fake", "anthropic:fake"])
def test_scores_parsed_from_the_wire_are_the_judges(teacher, fake_llm, tmp_path, monkeypatch):
    """The real SDKs (Anthropic's with the "Score:" prefill continued) against the fake server: each
    row gets exactly the score the judge wrote, and the answers without one are counted."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake")
    url = fake_llm.url if teacher.startswith("openai") else fake_llm.anthropic_url
    expected = [judge_score(r["output"]) for r in FAKE_ROWS]
    assert set(expected) == {None, 1, 2, 4, 5}                          # every kind of verdict is here
    verdicts = judge_rows(FAKE_ROWS, teacher=teacher, base_url=url, cache=tmp_path / "c.sqlite", job="curate:fake")
    assert verdicts.scores == [None if s is None else float(s) for s in expected]
    assert verdicts.unparseable == expected.count(None) and verdicts.stats["sent"] == len(FAKE_ROWS)
    for score, reason in zip(expected, verdicts.reasons):
        assert reason == ("no score in the judge's answer: 'The response talks about the account but does not "
                          "say how good it is.'" if score is None else
                          f"The response {'answers' if score >= 4 else 'misses'} the instruction.")
    if teacher.startswith("anthropic"):   # the answer was started at "Score:" and continued after it
        assert all(s.body["messages"][-1] == {"role": "assistant", "content": "Score:"} for s in fake_llm.seen)
