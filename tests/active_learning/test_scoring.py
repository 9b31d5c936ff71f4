"""Pool scoring through real models whose uncertainty is known (see conftest.py), and `select_from_pool`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seedloop.core.record import new_record, to_frame

POOL = [new_record("Classify the sentiment of this review.", f"review {i}: {w}")
        for i, w in enumerate(["great", "awful", "fine", "superb", "bad", "meh"])]
LABELS = ["positive", "negative"]


def _score(model_dir, strategy, **options):
    from active_learning.scoring import score_pool
    from train.inference import load_for_inference

    model, tok = load_for_inference(model_dir)
    return score_pool(model, tok, [dict(r) for r in POOL], strategy, labels=LABELS, max_new_tokens=6, **options), tok


def test_flat_model_is_maximally_unsure(flat_model):
    mnlp, tok = _score(flat_model, "mnlp")
    log_v = math.log(len(tok))   # the model's vocabulary; the embedding matrix is that size
    assert mnlp.uncertainty == pytest.approx(np.full(len(POOL), log_v), rel=1e-4)
    assert _score(flat_model, "entropy")[0].uncertainty == pytest.approx(np.full(len(POOL), log_v), rel=1e-4)
    # the two options are the same number of tokens, so under a uniform model they are equally likely
    assert _score(flat_model, "label_entropy")[0].uncertainty == pytest.approx(np.ones(len(POOL)))
    assert _score(flat_model, "margin")[0].uncertainty == pytest.approx(np.ones(len(POOL)))


def test_forced_model_is_sure(forced_model):
    mnlp, _ = _score(forced_model, "mnlp")
    assert mnlp.generated_tokens == 6 * len(POOL)      # it repeats its last token: no end of turn
    assert mnlp.uncertainty.max() < 1e-3
    assert _score(forced_model, "entropy")[0].uncertainty.max() < 1e-2
    assert _score(forced_model, "label_entropy")[0].uncertainty.max() < 1e-2
    assert _score(forced_model, "margin")[0].uncertainty.max() < 1e-2
    # sampling from a one-hot distribution gives the greedy answer every time
    sampled = _score(forced_model, "disagreement", samples=4)[0]
    assert sampled.uncertainty.max() == 0.0


def test_sampling_disagrees_under_a_flat_model(flat_model):
    sampled = _score(flat_model, "disagreement", samples=4)[0]
    assert sampled.uncertainty.min() > 0.5     # 4 draws from 49k equally likely tokens all differ


def test_label_scores_match_scoring_each_option_alone(tiny_base):
    """The shared-prefix option scorer against the plain one (a full forward pass per option)."""
    from train.inference import load_for_inference, response_logprobs, score_options

    model, tok = load_for_inference(tiny_base)
    options = ["positive", "negative", "not sure at all"]      # different token lengths
    records = [dict(r) for r in POOL]
    fast = score_options(model, tok, records, options, batch_size=4)
    for j, option in enumerate(options):
        alone = [lp for lp, _ in response_logprobs(model, tok, [{**r, "output": option} for r in records])]
        assert fast[:, j] == pytest.approx(alone, rel=1e-4)


def test_select_from_pool_writes_answers_and_scores(flat_model):
    from active_learning import select_from_pool

    pool = to_frame(POOL)
    chosen = select_from_pool(flat_model, pool, 2, strategy="label_entropy", labels=LABELS, round=3)
    assert chosen.picks.height == 2 and chosen.scores.height == len(POOL)
    assert set(chosen.picks["id"]) <= set(pool["id"])
    assert set(chosen.scores["output"]) <= set(LABELS)
    assert chosen.scores["round"].to_list() == [3] * len(POOL)
    assert all(s["strategy"] == "label_entropy" and s["uncertainty"] == pytest.approx(1.0)
               for s in chosen.scores["scores"])


def test_random_strategy_answers_only_the_picks(flat_model):
    from active_learning import select_from_pool

    chosen = select_from_pool(flat_model, to_frame(POOL), 2, strategy="random", max_new_tokens=3)
    assert chosen.picks["output"].null_count() == 0
    assert chosen.scores["output"].null_count() == len(POOL) - 2
