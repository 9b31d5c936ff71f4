"""The loop's pure pieces: training-set policy, promotion rule, automatic reviewer, manifest skipping."""

from __future__ import annotations

import polars as pl

from seedloop.loop import reviewer, steps
from seedloop.loop.manifest import Manifest, file_hash
from seedloop.record import new_record, to_frame
from seedloop.workspace import DEFAULTS, merge


def rec(text: str, output: str = "an answer here", **fields) -> dict:
    return new_record(f"Explain the {text} to a customer.", output=output, **fields)


def test_training_set_puts_humans_first_each_id_once_and_never_eval_rows():
    human = to_frame([rec("fee", "edited fee answer", source="human", status="edited"),
                      rec("limit", source="human", status="rejected")])
    seeds = to_frame([rec("card", source="seed", status="accepted"), rec("pin", source="seed", status="accepted")])
    pool = to_frame([rec("fee"), rec("limit"), rec("rate"), rec("pin")])
    evals = to_frame([rec("rate", source="seed")])
    df, counts = steps.training_set(human, seeds, pool, evals, "include")
    ids = df["id"].to_list()
    assert len(ids) == len(set(ids)) == 3                       # fee (human), card, pin (seeds); rate is eval
    assert df.row(0, named=True)["output"] == "edited fee answer"
    assert counts == {"rejected_by_review": 1, "eval_overlap": 1, "human": 1, "seed": 2, "unreviewed": 0}
    only_verified, counts = steps.training_set(human, seeds, to_frame([rec("new")]), evals, "exclude")
    assert only_verified.height == 3 and "unreviewed" not in counts


def test_promotion_rule_is_configurable_and_stated():
    config = merge(DEFAULTS, {"promote": {"metric": "eval_loss", "tolerance": 0.1}}, "test")
    assert steps.promote(config, {"loss": 2.0}, None)[0]
    ok, rule = steps.promote(config, {"loss": 2.05}, {"loss": 2.0})
    assert ok and "2.0500 <= 2.1000" in rule
    ok, rule = steps.promote(config, {"loss": 2.2}, {"loss": 2.0})
    assert not ok and rule.startswith("kept the previous adapter")
    config = merge(DEFAULTS, {"promote": {"metric": "rouge_l"}}, "test")
    assert not steps.promote(config, {"rouge_l": 0.3}, {"rouge_l": 0.4})[0]


def test_automatic_reviewer_accepts_close_edits_far_rejects_bad():
    assert reviewer.verdict("Open the app and tap freeze card", "Open the app and tap freeze card now",
                            "Explain how to freeze a card.", 0.5) == ("accepted", "Open the app and tap freeze card")
    assert reviewer.verdict("Something else entirely", "Open the app and tap freeze",
                            "Explain how to freeze a card.", 0.5) == ("edited", "Open the app and tap freeze")
    assert reviewer.verdict("x", "I'm sorry, I cannot help with that.", "Explain how to freeze a card.",
                            0.5)[0] == "rejected"
    picks = to_frame([rec("fee", "totally unrelated words")])
    pool = to_frame([rec("fee", "the fee is two euros per transfer")])
    out = reviewer.review_table(picks, pool, 0.5).row(0, named=True)
    assert out["status"] == "edited" and out["source"] == "human"
    assert out["output"] == "the fee is two euros per transfer"
    assert out["review"]["original_output"] == "totally unrelated words"


def test_manifest_skips_only_finished_steps_with_same_inputs_and_outputs(tmp_path):
    m = Manifest(tmp_path / "001", 1)
    assert not m.started("train", "h1")
    assert not m.done("train", "h1")                 # running is not done
    (tmp_path / "001" / "out.txt").write_text("x")
    m.finish("train", "h1", ["out.txt"], 1.0, rows=3)
    again = Manifest(tmp_path / "001", 1)             # read back from disk
    assert again.done("train", "h1") and not again.done("train", "h2")
    assert again.started("train", "h1")               # same inputs as the earlier run
    (tmp_path / "001" / "out.txt").unlink()
    again.finish("train", "h1", ["out.txt"], 1.0)
    assert not again.done("train", "h1")              # an output is gone
    assert file_hash(tmp_path / "nothing") == "missing"
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "t.parquet")
    assert file_hash(tmp_path / "t.parquet") == file_hash(tmp_path / "t.parquet") != "missing"
