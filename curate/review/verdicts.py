"""Annotations to verdicts, and the consensus rule when several annotators saw one example.

One annotation is one vote:
- Reject -> rejected (any edit is ignored);
- Accept with the answer changed -> edited; Accept with it unchanged -> accepted;
- no verdict but a changed answer (possible through the API) -> edited; neither -> no vote.
Answers are compared after trimming surrounding whitespace and normalizing line endings.

Consensus over the votes on one record:
- keep (accepted or edited) wins only with a strict majority; a tie rejects, because an example a
  reviewer rejected should not train the model unless most reviewers outvote them;
- a kept example whose keep votes include an edit takes the most recent edit, and is `edited`;
- agreement = the share of votes that match the consensus (1.0 for a single annotator);
- annotator and reviewed_at come from the votes that match the consensus; the rating is the mean of
  all ratings given, rounded half up; comments are all comments, one per line.
"""

from __future__ import annotations

from dataclasses import dataclass

from curate.review.tasks import COMMENT, OUTPUT, RATING, VERDICT

KEEP = ("accepted", "edited")


@dataclass(frozen=True)
class Vote:
    annotator: str
    status: str | None        # accepted | rejected | edited | None (no verdict, no edit)
    output: str | None        # the answer as submitted, when the annotation has one
    rating: int | None
    comment: str | None
    at: str                   # ISO 8601, when the annotation was last saved


@dataclass(frozen=True)
class Decision:
    status: str
    output: str | None        # the new answer when edited
    annotators: str
    reviewed_at: str
    agreement: float
    rating: int | None
    comment: str | None
    votes: int


def read_annotation(ann: dict, original: str | None, emails: dict[int, str]) -> Vote:
    """One exported annotation (Label Studio JSON) as a vote on a record whose answer was `original`."""
    fields = _fields(ann.get("result") or [])
    verdict = (fields.get(VERDICT) or "").strip().lower()
    output = fields.get(OUTPUT)
    changed = output is not None and _norm(output) != _norm(original)
    if verdict.startswith("reject"):
        status = "rejected"
    elif verdict.startswith("accept") or changed:
        status = "edited" if changed else "accepted"
    else:
        status = None
    rating = fields.get(RATING)
    return Vote(annotator=_who(ann.get("completed_by"), emails), status=status,
                output=output if status == "edited" else None, rating=int(rating) if rating is not None else None,
                comment=(fields.get(COMMENT) or "").strip() or None,
                at=ann.get("updated_at") or ann.get("created_at") or "")


def decide(votes: list[Vote]) -> Decision | None:
    """The consensus of the votes (see the module docstring), or None when nobody voted."""
    votes = sorted((v for v in votes if v.status), key=lambda v: v.at)
    if not votes:
        return None
    keep = [v for v in votes if v.status in KEEP]
    kept = len(keep) * 2 > len(votes)
    agreeing = keep if kept else [v for v in votes if v.status == "rejected"]
    edits = [v for v in keep if v.status == "edited"]
    status = ("edited" if edits else "accepted") if kept else "rejected"
    ratings = [v.rating for v in votes if v.rating is not None]
    comments = [v.comment for v in votes if v.comment]
    return Decision(
        status=status,
        output=edits[-1].output if kept and edits else None,
        annotators=", ".join(dict.fromkeys(v.annotator for v in agreeing)),
        reviewed_at=agreeing[-1].at,
        agreement=len(agreeing) / len(votes),
        rating=int(sum(ratings) / len(ratings) + 0.5) if ratings else None,
        comment="\n".join(comments) or None,
        votes=len(votes),
    )


def _fields(result: list[dict]) -> dict:
    """The first value of each control in an annotation's result, by control name."""
    out: dict = {}
    for item in result:
        name, value = item.get("from_name"), item.get("value") or {}
        if name in out:
            continue
        if "choices" in value and value["choices"]:
            out[name] = value["choices"][0]
        elif "text" in value:
            text = value["text"]
            out[name] = "\n".join(text) if isinstance(text, list) else str(text)
        elif "rating" in value:
            out[name] = value["rating"]
    return out


def _norm(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").strip()


def _who(completed_by, emails: dict[int, str]) -> str:
    # the JSON export gives a user id; some versions expand it to {"id", "email", ...}
    if isinstance(completed_by, dict):
        return completed_by.get("email") or f"user {completed_by.get('id')}"
    if completed_by is None:
        return "unknown"
    return emails.get(completed_by, f"user {completed_by}")
