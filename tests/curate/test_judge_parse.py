"""The judge's answer parser, on answers real models give (SmolLM2-135M's are the untidy ones)."""

import pytest

from curate.judge import judge_request, parse_verdict


@pytest.mark.parametrize("answer, score, reason", [
    ("Score: 4\nReason: Correct and clear. Extra words.", 4.0, "Correct and clear."),
    ("Score: 2.5\nReason: 2.5", 2.5, "2.5"),
    ("**Score:** 5\n**Reason:** Complete answer.", 5.0, "Complete answer."),
    ("4/5 - clear and correct", 4.0, "clear and correct"),
    ("I would rate this a 3 out of 5.", 3.0, "I would rate this a 3 out of 5."),
    ("Rating: five. It is great", 5.0, "It is great"),
    ("Score: 100%", None, None),
    ("Score: 45", None, None),
    ("The answer is fine", None, "The answer is fine"),
    ("", None, None),
])
def test_parse_verdict(answer, score, reason):
    assert parse_verdict(answer) == (score, reason)


def test_request_renders_the_rubric_and_prefills_only_when_the_teacher_continues():
    row = {"instruction": "Explain fees.", "input": "", "output": "There are none."}
    plain = judge_request(row, prefill=False)
    assert plain.messages[-1][0] == "user" and "Explain fees." in plain.messages[-1][1]
    assert "Input:" not in plain.messages[-1][1]
    assert judge_request(row, prefill=True).prefill == "Score:"
    assert plain.temperature == 0.0
