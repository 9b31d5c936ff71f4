"""The loop's pure pieces: training-set policy, promotion rule, automatic reviewer, manifest skipping."""

from __future__ import annotations

import polars as pl

from seedloop.core.errors import ConfigError
from seedloop.core.record import new_record, to_frame
from seedloop.loop import reviewer, steps
from seedloop.loop.manifest import Manifest, file_hash
from seedloop.loop.workspace import DEFAULTS, merge


def rec(text: str, output: str = "an answer here", **fields) -> dict:
    return new_record(f"Explain the {text} to a customer.", output=output, **fields)


def test_training_set_puts_reviewed_rows_first_each_id_once_and_never_eval_rows():
    human = to_frame([rec("fee", "edited fee answer", source="human", status="edited"),
                      rec("limit", source="human", status="rejected")])
    seeds = to_frame([rec("card", source="seed", status="accepted"), rec("pin", source="seed", status="accepted")])
    pool = to_frame([rec("fee"), rec("limit"), rec("rate"), rec("pin")])
    evals = to_frame([rec("rate", source="seed")])
    df, counts = steps.training_set(human, seeds, pool, evals, "include")
    ids = df["id"].to_list()
    assert len(ids) == len(set(ids)) == 3                       # fee (human), card, pin (seeds); rate is eval
    assert df.row(0, named=True)["output"] == "edited fee answer"
    # "reviewed", not "human": the automatic reviewer's rows are counted here too
    assert counts == {"rejected_by_review": 1, "eval_overlap": 1, "reviewed": 1, "seed": 2, "unreviewed": 0}
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


def test_promotion_metric_auto_is_accuracy_for_classifiers_and_eval_loss_for_generators():
    config = merge(DEFAULTS, {}, "test")
    assert config["promote"]["metric"] == "auto"
    assert steps.promote_metric(config, "classification") == "accuracy"
    assert steps.promote_metric(config, "generation") == "eval_loss"
    clf_old, clf_new = {"accuracy": 0.8, "loss": 0.6}, {"accuracy": 0.75, "loss": 0.5}
    ok, rule = steps.promote(config, clf_new, clf_old, "classification")
    assert not ok and "accuracy 0.7500 >= 0.8000" in rule            # higher is better
    ok, rule = steps.promote(config, clf_new, clf_old, "generation")
    assert ok and "eval_loss 0.5000 <= 0.6000" in rule              # a generator: its loss
    # eval_loss, set by hand, means a classifier's cross-entropy (`loss` in its eval.json)
    by_loss = merge(DEFAULTS, {"promote": {"metric": "eval_loss"}}, "test")
    assert steps.promote(by_loss, clf_new, clf_old, "classification")[0]
    rouge = merge(DEFAULTS, {"promote": {"metric": "rouge_l"}}, "test")
    try:
        steps.promote(rouge, clf_new, None, "classification")
    except ConfigError as exc:
        assert "promote.metric 'rouge_l'" in str(exc) and "accuracy" in str(exc)
    else:
        raise AssertionError("rouge_l of a classifier should be refused")


def test_an_old_workspace_config_still_loads_and_keeps_its_generator():
    old = {"train": {"base": "local", "config": "lora", "overrides": {"max_steps": 6}, "unreviewed": "include"},
           "promote": {"metric": "eval_loss", "tolerance": 0.0}}
    config = merge(DEFAULTS, old, "old.yaml")
    assert config["train"]["task"] == "auto" and config["pool"] is None and config["eval"]["file"] is None
    labels = to_frame([rec(w, "label_a" if i % 2 else "label_b") for i, w in enumerate("abcdefgh")])
    # lora is a generator's config: with task auto it settles the task, labels or not
    assert steps.choose_task(config["train"], labels, None)[0] == "generation"


def test_task_auto_follows_the_outputs_then_the_promoted_model(tmp_path):
    train = merge(DEFAULTS, {}, "test")["train"]
    labels = to_frame([rec(w, "label_a" if i % 2 else "label_b") for i, w in enumerate("abcdefgh")])
    prose = to_frame([rec(w, f"a long answer about {w} with many words") for w in "abcdefgh"])
    assert steps.choose_task(train, labels, None) == ("classification", "the training set's outputs are labels")
    assert steps.choose_task(train, prose, None)[0] == "generation"
    generator = tmp_path / "adapter"
    generator.mkdir()
    task, why = steps.choose_task(train, labels, generator)     # a warm start needs the same kind
    assert task == "generation" and "is a generator" in why
    explicit = {**train, "task": "classification"}
    assert steps.choose_task(explicit, prose, generator) == ("classification", "train.task")


def test_plan_leaves_out_the_other_recipes_overrides_and_warm_starts_only_the_same_kind(tmp_path):
    from seedloop.core.tables import write_table

    labels = to_frame([rec(w, "label_a" if i % 2 else "label_b") for i, w in enumerate("abcdefgh")])
    write_table(labels, tmp_path / "train.parquet")
    config = merge(DEFAULTS, {"train": {"overrides": {"epochs": 1, "max_steps": 3}}}, "test")
    generator = tmp_path / "adapter"
    generator.mkdir()
    plan, warm, notes = steps.plan_training(config, tmp_path / "train.parquet", None, "test")
    assert plan.task == "classification" and plan.base == "minilm" and plan.settings["epochs"] == 1
    assert "max_steps" not in plan.settings and notes["ignored_overrides"] == ["max_steps"] and warm is None
    config["train"]["task"] = "generation"
    plan, warm, notes = steps.plan_training(config, tmp_path / "train.parquet", generator, "test")
    assert plan.task == "generation" and plan.base == "local" and warm == generator
    assert plan.settings["max_steps"] == 3 and plan.settings["report_to"] == "none"
    assert plan.settings["lr"] == 1.0e-4                               # train.config auto: lora for a generator
    config["train"]["task"] = "classification"
    _, warm, notes = steps.plan_training(config, tmp_path / "train.parquet", generator, "test")
    assert warm is None and "not a classification model" in notes["no_warm_start"]


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
    assert out["status"] == "edited" and out["source"] == "generated"   # lineage kept: no row claims a human
    assert out["output"] == "the fee is two euros per transfer"
    assert out["review"]["original_output"] == "totally unrelated words"
    assert out["review"]["annotator"] == reviewer.ANNOTATOR


def test_automatic_reviewer_takes_a_classifier_label_only_when_exact():
    ask = "Which banking intent does this customer message express?"
    assert reviewer.verdict("card_arrival", "card_arrival", ask, 0.5, labels=True) == ("accepted", "card_arrival")
    # one character off is another label; ROUGE would have called these close
    assert reviewer.verdict("card_arrivals", "card_arrival", ask, 0.5, labels=True) == ("edited", "card_arrival")
    assert reviewer.verdict("Card_arrival", "card_arrival", ask, 0.5, labels=True) == ("edited", "card_arrival")
    assert reviewer.verdict("card_arrival", None, ask, 0.5, labels=True) == ("rejected", None)
    # the generation rules would reject a two-word message as an instruction; a label task does not care
    assert reviewer.verdict("pin_blocked", "pin_blocked", "PIN locked?", 0.5, labels=True)[0] == "accepted"
    assert reviewer.verdict("pin_blocked", "pin_blocked", "PIN locked?", 0.5)[0] == "rejected"
    pool = to_frame([new_record(ask, m, label, source="pool") for m, label in
                     (("my card never came", "card_arrival"), ("what rate do you use", "exchange_rate"))])
    picks = pool.with_columns(pl.Series("output", ["card_arrival", "card_arrival"]))
    out = reviewer.review_table(picks, pool, 0.5, labels=True)
    assert out["status"].to_list() == ["accepted", "edited"] and out["output"].to_list() == ["card_arrival",
                                                                                             "exchange_rate"]
    assert set(out["source"]) == {"pool"}


def test_automatic_reviewer_annotations_use_review_xml_names_and_pull_back_as_its_own():
    from curate.review import ACCEPT, COMMENT, OUTPUT, REJECT, VERDICT
    from curate.review.verdicts import read_annotation

    for status, output in (("accepted", "the answer"), ("edited", "a new answer"), ("rejected", None)):
        result = reviewer.annotation(status, output)
        names = {item["from_name"] for item in result}
        assert names == ({VERDICT, COMMENT} if status == "rejected" else {OUTPUT, VERDICT, COMMENT})
        choice = next(item["value"]["choices"][0] for item in result if item["from_name"] == VERDICT)
        assert choice == (REJECT if status == "rejected" else ACCEPT)
        vote = read_annotation({"result": result, "completed_by": 1}, "the answer", {1: "owner@example.com"})
        assert vote.status == status and vote.comment == reviewer.MARK   # read back as the pull reads it
    # Label Studio credits the token's user; a pull gives the automatic reviewer's rows back their annotator
    rows = to_frame([rec("fee", status="accepted", review={"annotator": "owner@example.com", "comment": reviewer.MARK}),
                     rec("pin", status="edited", review={"annotator": "ann@example.com", "comment": "fixed"}),
                     rec("card")])
    marked = reviewer.mark_automatic(rows)
    assert [r and r["annotator"] for r in marked["review"].to_list()] == [reviewer.ANNOTATOR, "ann@example.com", None]
    assert marked.drop("review").equals(rows.drop("review"))


def test_a_round_step_runs_a_module_level_function_once_per_inputs(tmp_path):
    from seedloop.loop.cycle import Round
    from seedloop.loop.workspace import Workspace

    said, calls = [], []

    def body(r, value):
        calls.append(value)
        r.path("out.txt").write_text(value)
        return {"value": value}

    r = Round(Workspace(tmp_path), {}, 1, said.append)
    r.dir.mkdir(parents=True)
    assert r.step("write", "h1", ["out.txt"], body, r, "a", doing=" it")
    assert not r.step("write", "h1", ["out.txt"], body, r, "b")           # same inputs: skipped
    assert r.step("write", "h2", ["out.txt"], body, r, "c")               # new inputs: runs again
    assert calls == ["a", "c"] and r.manifest.get("write", "value") == "c"
    assert said[0] == "round 1 · write it ..." and "skipped" in said[2]


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
