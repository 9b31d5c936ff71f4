"""Bad input: a clear error naming file, line and field; a non-zero exit; and no output written."""

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from seedloop.cli import app


def _curate(tmp_path, table, *extra):
    outputs = {"--out": tmp_path / "out.parquet", "--drops": tmp_path / "drops.jsonl",
               "--report": tmp_path / "report.html"}
    args = ["curate", str(table), *[x for k, v in outputs.items() for x in (k, str(v))],
            "--cache", str(tmp_path / "cache.sqlite"), *extra]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300", "HF_HUB_OFFLINE": "1"})
    written = [p.name for p in tmp_path.iterdir() if p.name.startswith(("out.", "drops.", "report."))
               or p.name.startswith(".out")]
    return result, " ".join(result.output.split()), written


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) if isinstance(r, dict) else r for r in rows))
    return path


def test_missing_text_column(tmp_path):
    table = _jsonl(tmp_path / "in.jsonl", [json.dumps({"prompt": "hi", "output": "x"}) + "\n"])
    result, msg, written = _curate(tmp_path, table)
    assert result.exit_code == 2 and written == []
    assert "in.jsonl" in msg and "field 'instruction'" in msg and "missing required column" in msg


def test_empty_table(tmp_path):
    table = _jsonl(tmp_path / "in.jsonl", [])
    result, msg, written = _curate(tmp_path, table)
    assert result.exit_code == 2 and written == []
    assert "in.jsonl" in msg and "no rows" in msg


@pytest.mark.parametrize("bad, shown", [("NaN", "'NaN' (a missing value)"), ("null", "missing"), ('"   "', "blank")])
def test_nan_none_or_blank_text_names_the_line(tmp_path, bad, shown):
    lines = ['{"instruction": "How do I reset my PIN?"}\n', "\n", f'{{"instruction": {bad}}}\n']
    table = _jsonl(tmp_path / "in.jsonl", lines)
    result, msg, written = _curate(tmp_path, table)
    assert result.exit_code == 2 and written == []
    assert "in.jsonl:3 field 'instruction'" in msg and shown in msg


def test_null_text_in_parquet_names_the_row(tmp_path):
    table = tmp_path / "in.parquet"
    pl.DataFrame({"instruction": ["Reset my PIN please", None]}).write_parquet(table)
    result, msg, written = _curate(tmp_path, table)
    assert result.exit_code == 2 and written == []
    assert "in.parquet (row 2) field 'instruction'" in msg


def test_missing_output_when_comparing_outputs(tmp_path):
    table = _jsonl(tmp_path / "in.jsonl", ['{"instruction": "Reset my PIN please", "output": null}\n'])
    result, msg, written = _curate(tmp_path, table, "--on", "output")
    assert result.exit_code == 2 and "in.jsonl:1 field 'output'" in msg and written == []


@pytest.mark.parametrize("option", ["--threshold", "--against-threshold"])
@pytest.mark.parametrize("value", ["0", "-0.2", "1.01"])
def test_threshold_outside_0_1(tmp_path, option, value):
    table = _jsonl(tmp_path / "in.jsonl", ['{"instruction": "Reset my PIN please"}\n'])
    result, msg, written = _curate(tmp_path, table, option, value)
    assert result.exit_code == 2 and written == []
    assert f"{option} must be in (0, 1], got {float(value)}" in msg


def test_min_score_without_judge_and_bad_against_file(tmp_path):
    table = _jsonl(tmp_path / "in.jsonl", ['{"instruction": "Reset my PIN please"}\n'])
    result, msg, _ = _curate(tmp_path, table, "--min-score", "3")
    assert result.exit_code == 2 and "--judge" in msg
    bad = _jsonl(tmp_path / "eval.jsonl", ['{"instruction": "ok ok ok"}\n', "{not json\n"])
    result, msg, written = _curate(tmp_path, table, "--against", str(bad))
    assert result.exit_code == 2 and "eval.jsonl:2" in msg and written == []


def test_missing_input_file(tmp_path):
    result, msg, written = _curate(tmp_path, tmp_path / "nope.parquet")
    assert result.exit_code == 2 and "nope.parquet" in msg and "not found" in msg and written == []


@pytest.mark.parametrize("args, expected", [
    (["--keep", "score"], "--keep score needs judge scores"),
    (["--select", "5", "--select-by", "score"], "--select-by score needs judge scores"),
    (["--keep", "newest"], "--keep must be one of seed-first, score"),
    (["--on", "title"], "--on must be one of prompt, output, all"),
    (["--judge", "openai:gpt-4o-mini"], "OPENAI_API_KEY is not set"),
    (["--judge", "mystery:model"], "unknown teacher 'mystery:model'"),
])
def test_bad_options_fail_before_any_work(tmp_path, monkeypatch, args, expected):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    table = _jsonl(tmp_path / "in.jsonl", ['{"instruction": "Reset my PIN please"}\n'])
    result, msg, written = _curate(tmp_path, table, *args)
    assert result.exit_code == 2 and expected in msg and written == []
    assert not (tmp_path / "embeddings.sqlite").exists()     # nothing was embedded


def test_a_folder_given_as_against_is_called_a_folder(tmp_path):
    table = _jsonl(tmp_path / "in.jsonl", ['{"instruction": "Reset my PIN please"}\n'])
    (tmp_path / "eval.jsonl").mkdir()
    result, msg, written = _curate(tmp_path, table, "--against", str(tmp_path / "eval.jsonl"))
    assert result.exit_code == 2 and written == []
    assert "eval.jsonl: is a directory" in msg and "not found" not in msg


@pytest.mark.parametrize("kind", ["folder", "text"])
def test_embedding_cache_that_is_a_folder_or_not_sqlite(tmp_path, kind):
    table = _jsonl(tmp_path / "in.jsonl", ['{"instruction": "Reset my PIN please"}\n'])
    cache = tmp_path / "emb.sqlite"
    if kind == "folder":
        cache.mkdir()
    else:
        cache.write_text("not a database, just some notes\n" * 40)
    result, msg, written = _curate(tmp_path, table, "--embed-cache", str(cache))
    assert result.exit_code == 2 and written == [], msg
    assert f"{cache}: " in msg and "embedding cache" in msg
    assert ("is a directory" if kind == "folder" else "file is not a database") in msg


def test_numbers_where_text_belongs_are_read_with_a_warning_per_line(tmp_path):
    from seedloop.core.errors import InputWarning
    from seedloop.core.tables import read_table

    table = _jsonl(tmp_path / "in.jsonl", ['{"instruction": "Add one and two", "output": "3"}\n',
                                           '{"instruction": "Add two and two", "output": 4}\n',
                                           '{"instruction": "Is it true?", "output": true}\n'])
    with pytest.warns(InputWarning) as caught:
        df = read_table(table)
    assert df["output"].to_list() == ["3", "4", "true"]
    assert [str(w.message) for w in caught] == [
        f"{table}:2 field 'output': expected text, found int 4; read as text",
        f"{table}:3 field 'output': expected text, found bool True; read as text"]
    parquet = tmp_path / "in.parquet"
    pl.DataFrame({"instruction": ["a", "b"], "output": [None, 7]}).write_parquet(parquet)
    with pytest.warns(InputWarning, match=r"in\.parquet \(row 2\) field 'output': expected text, found int 7"):
        assert read_table(parquet)["output"].to_list() == [None, "7"]
