"""`seedloop review pull --hf-dataset`, with the export stubbed (the live pull and its card are in
test_review_live.py): the card counts records by status and by reviewer, and with --reviewed-only it
says how many unreviewed records were left out."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import datasets
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

from curate.review import ReviewStats
from seedloop.cli import app
from seedloop.core.record import new_record, to_frame


def pulled():
    """What pull_records returns for 5 records: ann accepted 2, bob rejected 1, both edited 1, 1 untouched."""
    verdicts = [("accepted", "ann"), ("accepted", "ann"), ("rejected", "bob"), ("edited", "ann, bob"), (None, None)]
    rows = [new_record(f"question {i}", output="answer", status=status or "pending", teacher="local",
                       review={"annotator": who, "agreement": 1.0} if who else None)
            for i, (status, who) in enumerate(verdicts)]
    stats = ReviewStats(tasks=6, records=5, reviewed=4, skipped=Counter(task_without_record_id=1))
    return to_frame(rows), stats


def test_pull_writes_a_card_with_statuses_and_reviewers(tmp_path, monkeypatch):
    monkeypatch.setattr("seedloop.cli.review._connect", lambda url, retries: SimpleNamespace(url="http://ls"))
    monkeypatch.setattr("curate.review.pull_records", lambda conn, project: pulled())
    args = ["review", "pull", "--project", "support-v1", "--out", str(tmp_path / "reviewed.parquet"),
            "--reviewed-only", "--hf-dataset", str(tmp_path / "hf")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    card = DatasetCard.load(tmp_path / "hf" / "README.md")
    facts = card.data.seedloop
    assert card.data.license == "unknown" and card.data.tags == ["seedloop", "review", "synthetic"]
    assert facts["rows"] == 4 and facts["by_status"] == {"accepted": 2, "edited": 1, "rejected": 1}
    assert facts["reviewers"] == {"ann": 3, "bob": 2}
    assert facts["dropped"] == {"not_reviewed": 1, "task_without_record_id": 1}
    assert facts["settings"] == {"project": "support-v1", "reviewed_only": True}
    assert "| ann | 3 |" in card.text and "| not_reviewed | 1 |" in card.text
    assert datasets.load_from_disk(str(tmp_path / "hf")).num_rows == 4
