"""Annotations to votes, and the consensus rule, on hand-written Label Studio JSON."""

from __future__ import annotations

import pytest

from curate.review.verdicts import Vote, decide, read_annotation

EMAILS = {1: "ann@example.com", 2: "bob@example.com", 3: "cy@example.com"}


def ann(user: int, verdict: str | None = None, output: str | None = None, *, rating: int | None = None,
        comment: str | None = None, at: str = "2026-01-01T00:00:00Z", cancelled: bool = False) -> dict:
    result = []
    if verdict:
        result.append({"from_name": "verdict", "to_name": "instruction", "type": "choices",
                       "value": {"choices": [verdict]}})
    if output is not None:
        result.append({"from_name": "output", "to_name": "instruction", "type": "textarea",
                       "value": {"text": [output]}})
    if rating is not None:
        result.append({"from_name": "rating", "to_name": "instruction", "type": "rating", "value": {"rating": rating}})
    if comment is not None:
        result.append({"from_name": "comment", "to_name": "instruction", "type": "textarea",
                       "value": {"text": [comment]}})
    return {"completed_by": user, "result": result, "updated_at": at, "was_cancelled": cancelled}


@pytest.mark.parametrize("annotation, status, output", [
    (ann(1, "accept", "Paris"), "accepted", None),
    (ann(1, "Accept", "  Paris\r\n"), "accepted", None),          # whitespace and line endings are no edit
    (ann(1, "accept"), "accepted", None),                          # prediction not kept: answer unchanged
    (ann(1, "accept", "Paris, France"), "edited", "Paris, France"),
    (ann(1, "reject", "Paris, France"), "rejected", None),        # an edit on a rejection is ignored
    (ann(1, None, "Lyon"), "edited", "Lyon"),                      # API-made: edit without a verdict
    (ann(1, None, "Paris"), None, None),                           # no verdict, no edit: no vote
])
def test_one_annotation_is_one_vote(annotation, status, output):
    vote = read_annotation(annotation, "Paris", EMAILS)
    assert (vote.status, vote.output) == (status, output)
    assert vote.annotator == "ann@example.com"


def test_rating_comment_and_unknown_user():
    vote = read_annotation(ann(9, "accept", "Paris", rating=4, comment=" ok \n"), "Paris", EMAILS)
    assert (vote.rating, vote.comment, vote.annotator) == (4, "ok", "user 9")
    expanded = read_annotation({**ann(1, "reject"), "completed_by": {"id": 7, "email": "x@y.z"}}, "P", EMAILS)
    assert expanded.annotator == "x@y.z"


def v(who: str, status: str, at: str, output: str | None = None, rating: int | None = None,
      comment: str | None = None) -> Vote:
    return Vote(who, status, output, rating, comment, at)


def test_single_vote_agrees_with_itself():
    d = decide([v("a", "accepted", "t1")])
    assert (d.status, d.agreement, d.annotators, d.reviewed_at, d.output) == ("accepted", 1.0, "a", "t1", None)


def test_tie_rejects_and_names_the_rejecter():
    d = decide([v("a", "accepted", "t1"), v("b", "rejected", "t2")])
    assert (d.status, d.agreement, d.annotators, d.reviewed_at) == ("rejected", 0.5, "b", "t2")


def test_majority_keeps_and_the_latest_edit_wins():
    d = decide([v("a", "edited", "t3", output="late edit"), v("b", "rejected", "t2"),
                v("c", "edited", "t1", output="early edit"), v("d", "accepted", "t4")])
    assert (d.status, d.output, d.agreement, d.votes) == ("edited", "late edit", 0.75, 4)
    assert d.annotators == "c, a, d"           # the keepers, in time order
    assert d.reviewed_at == "t4"


def test_ratings_average_half_up_and_comments_join():
    d = decide([v("a", "accepted", "t1", rating=4, comment="fine"), v("b", "accepted", "t2", rating=5),
                v("c", "rejected", "t3", comment="too short")])
    assert (d.status, d.rating, d.comment) == ("accepted", 5, "fine\ntoo short")
    assert d.agreement == pytest.approx(2 / 3)


def test_no_votes_no_decision():
    assert decide([]) is None
    assert decide([v("a", None, "t1")]) is None
