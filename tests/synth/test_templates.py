"""Every shipped template loads, declares exactly the variables it uses, and names a missing one."""

from __future__ import annotations

import pytest

from prompts import MissingVariable, list_templates, load_template


def test_every_template_loads():
    names = list_templates()
    assert "self_instruct/instructions" in names and "evol_instruct/in_depth" in names
    for name in names:
        tpl = load_template(name)
        assert tpl.ref.startswith(name + "@") and len(tpl.ref.split("@")[1]) == 8
        assert tpl.messages and tpl.description


def test_missing_variable_is_named():
    with pytest.raises(MissingVariable, match="needs variable.*count"):
        load_template("self_instruct/instructions").render(examples=["a"])


def test_render_prefill():
    msgs = load_template("self_instruct/instructions").render(examples=["Do A.", "Do B."], count=3)
    assert msgs[-1]["role"] == "assistant"
    assert msgs[-1]["content"].endswith("Task 2: Do B.\nTask 3:")
