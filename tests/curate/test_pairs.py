"""Preference pairs from review (curate/pairs.py, `seedloop pairs`): edits, rejections and the judge, with
lineage; TRL's format written and read back; bad pair files named by line and field."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.pairs import build_pairs, read_pairs
from seedloop.cli import app
from seedloop.core.errors import InputError
from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import write_table


def reviewed(instruction: str, output: str, status: str, *, original: str | None = None, who: str = "ann@x",
             round: int = 1, **fields) -> dict:
    return new_record(instruction, "", output, status=status, round=round,
                      review={"annotator": who, "original_output": original}, **fields)


def first_round() -> pl.DataFrame:
    return to_frame([
        reviewed("Reset my PIN", "Open Cards, then Reset PIN.", "edited", original="I cannot help.", who="ann@x"),
        reviewed("Card arrived?", "It ships in 3 days.", "edited", original="It ships in 3 days. ", who="bob@x"),
        reviewed("Top up by card", "Go to Top up and pick a card.", "accepted"),
        reviewed("Cancel a transfer", "Transfers cannot be undone.", "rejected", who="bob@x"),
        reviewed("Where is my refund?", "Refunds take 5 days.", "rejected", who="ann@x"),
        reviewed("Edited without original", "Something.", "edited", original=None),
        reviewed("Edited from nothing", "Something.", "edited", original="  "),
        new_record("Not reviewed yet", "", "Pending answer."),
    ])


def second_round() -> pl.DataFrame:
    return to_frame([reviewed("Cancel a transfer", "Cancel it under Activity within 30 minutes.", "accepted",
                              who="cy@x", round=2)])


def test_edits_give_edit_over_original_with_lineage():
    pairs, counts = build_pairs(first_round())
    edit = pairs.filter(pl.col("origin") == "edit").to_dicts()
    assert len(edit) == 1   # the second edit only added a space: nothing to learn
    assert edit[0]["chosen"] == "Open Cards, then Reset PIN." and edit[0]["rejected"] == "I cannot help."
    assert edit[0]["prompt"] == [{"role": "user", "content": "Reset my PIN"}]
    assert edit[0]["reviewer"] == "ann@x" and edit[0]["round"] == 1
    assert counts["skipped_same_text_edit"] == 1 and counts["skipped_edit_without_original"] == 1
    assert counts["skipped_empty_answer_edit"] == 1
    # a rejection whose prompt has no good answer in the tables gives no pair yet
    assert counts["skipped_rejected_without_answer"] == 2 and counts["rejection"] == 0


def test_rejection_pairs_with_the_accepted_answer_from_another_table():
    both = pl.concat([first_round(), second_round()], how="diagonal_relaxed")
    pairs, counts = build_pairs(both)
    rej = pairs.filter(pl.col("origin") == "rejection").to_dicts()
    assert [(p["chosen"], p["rejected"]) for p in rej] == [("Cancel it under Activity within 30 minutes.",
                                                            "Transfers cannot be undone.")]
    assert rej[0]["reviewer"] == "bob@x"   # who rejected it
    assert rej[0]["chosen_id"] == rej[0]["rejected_id"] == rej[0]["id"]   # ids hash the prompt
    assert counts == {"edit": 1, "rejection": 1, "skipped_same_text_edit": 1, "skipped_edit_without_original": 1,
                      "skipped_empty_answer_edit": 1, "skipped_rejected_without_answer": 1}
    # the same tables twice add no pair: the edit again (1), and the rejection from each copy of the two
    # rows against each copy of the accepted answer (4, one kept)
    again, counts = build_pairs(pl.concat([both, both], how="diagonal_relaxed"))
    assert again.equals(pairs) and counts["skipped_repeated_pair"] == 1 + 3


def test_judge_pairs_need_the_gap():
    def judged(output, score):
        return new_record("Explain APR", "", output, status="pending", teacher="openai:judge",
                          scores={"judge_score": score})

    table = to_frame([judged("APR is the yearly cost of a loan.", 5.0), judged("APR is a bank.", 2.0),
                      judged("APR means annual percentage rate.", 4.0)])
    assert build_pairs(table)[0].height == 0                     # no --min-gap: no judge pairs
    pairs, _ = build_pairs(table, min_gap=3)
    assert pairs.select("chosen", "rejected", "gap").to_dicts() == [
        {"chosen": "APR is the yearly cost of a loan.", "rejected": "APR is a bank.", "gap": 3.0}]
    pairs, counts = build_pairs(table, min_gap=3.5)
    assert pairs.height == 0 and counts["skipped_judge_gap_below_min"] == 1


def test_chat_records_keep_their_turns():
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "Block my card"}, {"role": "assistant", "content": "Done: blocked."}]
    row = new_record("", "", None, messages=turns, status="edited", review={"original_output": "I can't."})
    pairs, _ = build_pairs(to_frame([row]))
    assert pairs.to_dicts()[0]["prompt"] == turns[:3]
    assert pairs.to_dicts()[0]["chosen"] == "Done: blocked." and pairs.to_dicts()[0]["rejected"] == "I can't."


def test_cli_writes_pairs_and_trl_jsonl(tmp_path):
    write_table(first_round(), tmp_path / "r1.parquet")
    write_table(second_round(), tmp_path / "r2.jsonl")
    out, trl = tmp_path / "pairs.parquet", tmp_path / "pairs.trl.jsonl"
    result = CliRunner().invoke(app, ["pairs", str(tmp_path / "r1.parquet"), str(tmp_path / "r2.jsonl"),
                                      "--out", str(out), "--trl", str(trl)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).height == 2
    lines = [json.loads(line) for line in trl.read_text().splitlines()]
    assert lines[0] == {"prompt": [{"role": "user", "content": "Reset my PIN"}],
                        "chosen": [{"role": "assistant", "content": "Open Cards, then Reset PIN."}],
                        "rejected": [{"role": "assistant", "content": "I cannot help."}]}
    # TRL's format reads back as the same pairs
    assert read_pairs(trl).select("prompt", "chosen", "rejected").equals(
        read_pairs(out).select("prompt", "chosen", "rejected"))


def test_cli_refuses_bad_outputs_before_work(tmp_path):
    write_table(first_round(), tmp_path / "r1.parquet")
    result = CliRunner().invoke(app, ["pairs", str(tmp_path / "r1.parquet"), "--out", str(tmp_path / "p.csv")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "must end in .parquet or .jsonl" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_bad_pair_files_are_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}) + "\n"
                    + json.dumps({"prompt": "Hi", "chosen": "Hello"}) + "\n")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 2, "rejected")
    path.write_text(json.dumps({"prompt": "Hi", "chosen": {"text": "x"}, "rejected": "y"}) + "\n")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert err.value.field == "chosen"


def test_cli_hf_dataset_has_a_card_of_the_pairs(tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    write_table(pl.concat([first_round(), second_round()], how="diagonal_relaxed"), tmp_path / "r.parquet")
    folder = tmp_path / "pairs_ds"
    result = CliRunner().invoke(app, ["pairs", str(tmp_path / "r.parquet"), "--out", str(tmp_path / "p.parquet"),
                                      "--hf-dataset", str(folder), "--license", "cc-by-4.0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert datasets.load_from_disk(str(folder)).num_rows == 2
    card = DatasetCard.load(folder / "README.md")
    assert card.data.license == "cc-by-4.0" and "dpo" in card.data.tags
    assert "| edit | 1 |" in card.text and "| rejection | 1 |" in card.text
