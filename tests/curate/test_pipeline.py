"""The chain on small tables: heuristics, keep policy by judge score, --min-score, --select.

The judge here is a rule (score = the number written in the output), standing in for an LLM so that
the pipeline's use of scores can be checked exactly; test_judge.py runs real teachers.
"""

import pytest

from curate.judge import Verdicts
from curate.pipeline import curate_table
from seedloop.core.record import DROP_SCHEMA, new_record, to_frame


def rule_judge(rows, progress=None):
    scores = [float(r["output"].split()[-1]) if r["output"] else None for r in rows]
    return Verdicts(scores=scores, reasons=[f"says {s}" for s in scores], teacher="rule")


def _table(rows):
    return to_frame([new_record(i, output=o, source=s) for i, o, s in rows])


def test_heuristics_drop_generated_refusals_but_never_seed_rows(embedder):
    df = _table([("Explain how card refunds are processed", "I'm sorry, I cannot help with that.", "generated"),
                 ("Explain how a refund reaches the account", "I'm sorry, I cannot help with that.", "seed"),
                 ("Explain the fee for ATM withdrawals abroad", "", "generated")])
    res = curate_table(df, embedder)
    assert dict(res.counts) == {"refusal": 1, "empty_output": 1}
    assert res.kept.get_column("source").to_list() == ["seed"]
    assert set(res.drops.get_column("detail")) == {"the output refuses or apologizes instead of answering",
                                                   "the output is empty"}
    assert res.drops.columns[:len(DROP_SCHEMA)] == list(DROP_SCHEMA)
    assert res.drops.get_column("stage").to_list() == ["heuristics", "heuristics"]


def test_keep_score_keeps_the_best_judged_copy(embedder):
    df = _table([("How do I freeze my card?", "Open the app. 2", "generated"),
                 ("how do I freeze my card", "Tap Freeze in the app. 5", "generated"),
                 ("How do I freeze my card ?", "Call us. 3", "generated")])
    res = curate_table(df, embedder, keep="score", judge=rule_judge)
    assert res.kept.get_column("output").to_list() == ["Tap Freeze in the app. 5"]
    kept_id = res.kept.get_column("id")[0]
    assert set(res.drops.get_column("scores").struct.field("dup_of")) == {kept_id}
    assert res.kept.get_column("scores").struct.field("judge_score").to_list() == [5.0]


def test_min_score_drops_low_rows_and_keeps_unscored_ones(embedder):
    df = _table([("What is the daily ATM withdrawal limit?", "It is 500 euros. 4", "generated"),
                 ("Why was my transfer to Spain declined?", "No idea. 1", "generated"),
                 ("Write a greeting for new customers", None, "generated")])
    res = curate_table(df, embedder, judge=rule_judge, min_score=3)
    assert dict(res.counts) == {"low_score": 1}
    assert res.drops.get_column("detail").to_list() == ["judge score 1 < 3"]
    assert res.kept.height == 2


@pytest.mark.parametrize("strategy", ["diversity", "score"])
def test_select_keeps_exactly_k(embedder, strategy):
    topics = ["card delivery", "exchange rates", "PIN reset", "refund status", "top-up by bank transfer",
              "account closure", "disposable virtual cards", "cash withdrawal fees"]
    df = _table([(f"Tell me about {t} for my account", f"Answer. {1 + i % 5}", "generated")
                 for i, t in enumerate(topics)])
    res = curate_table(df, embedder, judge=rule_judge, select=3, select_by=strategy)
    assert res.kept.height == 3 and res.counts == {"not_selected": 5}
    if strategy == "score":   # scores are 1 2 3 4 5 1 2 3: the best three, none within 0.9 cosine of another
        assert sorted(res.kept.get_column("scores").struct.field("judge_score").to_list()) == [3.0, 4.0, 5.0]


def test_everything_dropped_still_writes_consistent_tables(embedder):
    df = _table([("Explain card fees please now", "", "generated")])
    res = curate_table(df, embedder)
    assert res.kept.height == 0 and res.drops.height == 1 and res.curve[0] == (0.8, 0.0)
