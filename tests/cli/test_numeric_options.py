"""Every numeric option is checked as it is parsed: a value outside its range is a usage error naming the
option (exit 2), before any file is read, any model loaded or any request sent. Before this,
`generate --concurrency 0` waited forever with nothing on screen and `--concurrency -3` printed a
traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from seedloop.cli import app

# the required arguments of each command; the files need not exist, since parsing comes first
BASE = {
    "generate": ["generate", "--seeds", "s.jsonl", "--out", "o.jsonl"],
    "curate": ["curate", "t.jsonl", "--out", "o.jsonl"],
    "evaluate": ["evaluate", "--model", "m", "--data", "d.jsonl"],
    "select": ["select", "--model", "m", "--pool", "p.jsonl", "--k", "3"],
    "simulate": ["simulate"],
    "init": ["init", "ws", "--seeds", "s.jsonl"],
    "cycle": ["cycle", "ws"],
    "watch": ["watch", "ws", "--every", "3"],
    "review push": ["review", "push", "t.jsonl", "--project", "p"],
    "review pull": ["review", "pull", "--project", "p", "--out", "o.jsonl"],
    "review serve": ["review", "serve"],
    "seeds inspect": ["seeds", "inspect", "s.jsonl"],
}
BAD = [
    ("generate", "--n", "0"), ("generate", "--concurrency", "0"), ("generate", "--concurrency", "-3"),
    ("generate", "--rpm", "0"), ("generate", "--tpm", "-5"), ("generate", "--max-retries", "-1"),
    ("generate", "--max-cost", "-1"), ("generate", "--temperature", "3"), ("generate", "--seed", "-1"),
    ("curate", "--concurrency", "0"), ("curate", "--max-cost", "-0.5"), ("curate", "--ngram", "1"),
    ("curate", "--neighbours", "0"), ("curate", "--select", "0"), ("curate", "--min-score", "6"),
    ("evaluate", "--batch-size", "0"), ("evaluate", "--max-new-tokens", "0"),
    ("select", "--k", "0"), ("select", "--pool-factor", "0.5"), ("select", "--samples", "1"),
    ("select", "--batch-size", "-1"), ("select", "--round", "-2"),
    ("simulate", "--seeds", "0"), ("simulate", "--rounds", "0"), ("simulate", "--initial", "-1"),
    ("simulate", "--batch", "0"), ("simulate", "--pool-factor", "0.5"),
    ("init", "--n", "0"), ("init", "--k", "0"),
    ("cycle", "--until", "0"),
    ("watch", "--every", "0"), ("watch", "--interval", "0"),
    ("review push", "--batch-size", "5000"), ("review push", "--overlap", "0"), ("review pull", "--retries", "-1"),
    ("review serve", "--port", "70000"),
    ("seeds inspect", "--show", "-1"),
]


@pytest.mark.parametrize("command, option, value", BAD, ids=[f"{c} {o} {v}" for c, o, v in BAD])
def test_out_of_range_is_a_usage_error(tmp_path, monkeypatch, command, option, value):
    monkeypatch.chdir(tmp_path)   # nothing the command might create lands in the tree
    base = BASE[command]
    if option in base:   # the base gives this option a good value: replace it
        i = base.index(option)
        base = base[:i] + base[i + 2:]
    result = CliRunner().invoke(app, [*base, option, value], env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert result.exit_code == 2, text
    assert f"Invalid value for '{option}'" in text, text
    assert list(tmp_path.iterdir()) == []
