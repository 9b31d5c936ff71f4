"""Seed ingestion: every format in every file type, and every kind of bad input."""

from __future__ import annotations

import json

import polars as pl
import pytest

from seedloop.core.errors import InputError
from seedloop.core.record import SCHEMA, make_id
from synth.seeds import inspect_seeds, load_seeds
from tests.conftest import EXAMPLE_SEEDS, run_cli

ALPACA = [{"instruction": "Explain a chargeback.", "input": "", "output": "A chargeback returns money."},
          {"instruction": "Classify the intent.", "input": "my card is lost", "output": "card_lost"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet"])
def test_alpaca_in_every_file_type(tmp_path, kind):
    path = tmp_path / f"seeds.{kind}"
    if kind == "jsonl":
        write_jsonl(path, ALPACA)
    elif kind == "json":
        path.write_text(json.dumps(ALPACA))
    elif kind == "csv":
        pl.DataFrame(ALPACA).write_csv(path)
    else:
        pl.DataFrame(ALPACA).write_parquet(path)
    df = load_seeds(path)
    assert df.schema == pl.Schema(SCHEMA)
    assert df["instruction"].to_list() == [r["instruction"] for r in ALPACA]
    assert df["output"].to_list() == ["A chargeback returns money.", "card_lost"]
    assert set(df["source"]) == {"seed"}
    # the id is the content hash of instruction + input, the same whatever the file type
    assert df["id"][1] == make_id("Classify the intent.", "my card is lost")


def test_each_format_is_detected_and_converted(tmp_path):
    cases = {
        "self_instruct": {"instruction": "Give a synonym.", "instances": [{"input": "big", "output": "large"},
                                                                          {"input": "fast", "output": "quick"}]},
        "chat": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                              {"role": "assistant", "content": "Hello."}]},
        "sharegpt": {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
        "prompt_completion": {"prompt": "2+2=", "completion": "4"},
        "alpaca": {"instruction": "Say hi.", "output": "hi"},
    }
    for fmt, row in cases.items():
        rep = inspect_seeds(write_jsonl(tmp_path / f"{fmt}.jsonl", [row]))
        assert rep.format == fmt, fmt
        assert not rep.problems, rep.problems
    si = load_seeds(tmp_path / "self_instruct.jsonl")
    assert si["input"].to_list() == ["big", "fast"] and si["output"].to_list() == ["large", "quick"]
    chat = load_seeds(tmp_path / "chat.jsonl").row(0, named=True)
    assert (chat["instruction"], chat["output"]) == ("Hi?", "Hello.")
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant"]
    share = load_seeds(tmp_path / "sharegpt.jsonl").row(0, named=True)
    assert [m["role"] for m in share["messages"]] == ["user", "assistant"]
    pc = load_seeds(tmp_path / "prompt_completion.jsonl").row(0, named=True)
    assert (pc["instruction"], pc["output"]) == ("2+2=", "4")


def test_format_override(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "p", "completion": "c", "instruction": "x y z"}])
    assert inspect_seeds(path).format == "prompt_completion"
    assert load_seeds(path, "alpaca")["instruction"][0] == "x y z"


def test_duplicates_are_counted_and_dropped(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", ALPACA + [ALPACA[0]])
    rep = inspect_seeds(path)
    assert rep.duplicates == 1 and len(rep.records) == 2


def test_the_bundled_example_is_clean():
    rep = inspect_seeds(EXAMPLE_SEEDS)
    assert rep.format == "alpaca" and not rep.problems and rep.duplicates == 0
    assert 20 <= len(rep.records) <= 50


# -- bad input: one clear message naming file, line and field ------------------------------

def bad(tmp_path, name: str, content: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def test_empty_file(tmp_path):
    with pytest.raises(InputError, match="holds no rows") as exc:
        load_seeds(bad(tmp_path, "e.jsonl", ""))
    assert "e.jsonl" in str(exc.value)


def test_malformed_json_line_names_the_line(tmp_path):
    text = json.dumps(ALPACA[0]) + "\n" + json.dumps(ALPACA[1]) + "\n{\"instruction\": \"oops\",\n"
    with pytest.raises(InputError, match=r"s\.jsonl:3: malformed JSON"):
        load_seeds(bad(tmp_path, "s.jsonl", text))


def test_csv_without_needed_columns(tmp_path):
    with pytest.raises(InputError, match=r"cannot tell the seed format .*\['category', 'text'\]"):
        load_seeds(bad(tmp_path, "s.csv", "text,category\nhello,greeting\n"))


def test_missing_field_in_one_row_names_line_and_field(tmp_path):
    rows = [ALPACA[0], {"instruction": "", "output": "x"}, ALPACA[1]]
    with pytest.raises(InputError, match=r"s\.jsonl:2 field 'instruction': missing or empty"):
        load_seeds(write_jsonl(tmp_path / "s.jsonl", rows))


def test_wrong_type_names_field(tmp_path):
    rows = [{"instruction": "Add.", "input": "1+1", "output": 2}]
    with pytest.raises(InputError, match=r"field 'output': expected text, found int"):
        load_seeds(write_jsonl(tmp_path / "s.jsonl", rows))


def test_unknown_file_type_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="unknown file type '.txt'"):
        load_seeds(bad(tmp_path, "s.txt", "hello"))
    with pytest.raises(InputError, match="unknown format 'dolly'"):
        load_seeds(write_jsonl(tmp_path / "s.jsonl", ALPACA), "dolly")


def test_unreadable_encoding_names_the_line(tmp_path):
    content = (json.dumps(ALPACA[0]) + "\n").encode() + '{"instruction": "caf\xe9"}\n'.encode("latin-1")
    with pytest.raises(InputError, match=r"s\.jsonl:2: not valid UTF-8"):
        load_seeds(bad(tmp_path, "s.jsonl", content))


def test_inspect_cli_lists_every_problem(tmp_path):
    rows = [ALPACA[0], {"instruction": "", "output": "x"}, {"instruction": "ok now", "output": 3}]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    res = run_cli("seeds", "inspect", path)
    assert res.returncode == 2
    assert "line 2 field 'instruction': missing or empty" in res.stdout
    assert "line 3 field 'output': expected text, found int" in res.stdout


@pytest.mark.parametrize("name,content,needle", [
    ("empty.jsonl", "", "holds no rows"),
    ("bad.jsonl", '{"instruction": "a b c", "output": "x"}\n{oops\n', "bad.jsonl:2: malformed JSON"),
    ("cols.csv", "text,category\nhi,x\n", "cannot tell the seed format"),
    ("enc.csv", b"instruction,output\ncaf\xe9,x\n", "enc.csv:2: not valid UTF-8"),
])
def test_generate_refuses_bad_seeds_and_writes_nothing(tmp_path, name, content, needle):
    seeds = bad(tmp_path, name, content)
    out = tmp_path / "out.parquet"
    res = run_cli("generate", "--seeds", seeds, "--n", "3", "--out", out, "--cache", tmp_path / "c.sqlite")
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr.replace("\n", "")
    assert "Traceback" not in res.stderr
    assert not out.exists()
