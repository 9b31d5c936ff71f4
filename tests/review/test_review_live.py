"""Push, annotate as annotators would, pull: against the session's real Label Studio server."""

from __future__ import annotations

from contextlib import closing

import datasets
import polars as pl
import pytest
from huggingface_hub import DatasetCard

from curate.review import pull_records, push_records, review_status
from curate.review.server import login
from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import read_table, write_table
from tests.conftest import run_cli
from tests.label_studio import ANNOTATORS

pytestmark = pytest.mark.slow

ANN, BOB = "ann@example.com", "bob@example.com"
CHAT = [{"role": "user", "content": "How do I freeze my card?"}, {"role": "assistant", "content": "Call us."}]


def review_table() -> pl.DataFrame:
    """Eight records, one per scenario; the comment says what the annotators will do."""
    common = {"teacher": "openai:gpt-4o-mini", "prompt": "self_instruct/instances@0badc0de", "parents": ["seed-1"]}
    rows = [
        new_record("Name the capital of France.", "", "Paris", scores={"judge_score": 5.0}, **common),   # accept
        new_record("Give the boiling point of water.", "at sea level", "50 C", **common),            # reject
        new_record("How do I freeze my card?", "", "Call us.", messages=CHAT, **common),             # edit
        new_record("Translate 'bonjour' to English.", "", "hello", **common),                        # rate, comment
        new_record("Is 91 a prime number?", "", "Yes", **common),                                    # ann yes, bob no
        new_record("Summarize: the cat sat on the mat.", "", "A cat sat.", **common),                # ann edits, bob ok
        new_record("List three primary colors.", "", "red, green, blue", **common),                  # skipped
        new_record("Classify the intent: 'my card is lost'.", "", "lost_card", source="pool", round=2,
                   scores={"uncertainty": 0.8}),                                                     # untouched
    ]
    return to_frame(rows)


def result(verdict: str | None, output: str | None, rating: int | None = None, comment: str | None = None) -> list:
    """What the labeling UI submits: the prefilled answer (maybe edited), the verdict, rating, comment."""
    items = []
    if output is not None:
        items.append({"from_name": "output", "to_name": "instruction", "type": "textarea", "value": {"text": [output]}})
    if verdict:
        items.append({"from_name": "verdict", "to_name": "instruction", "type": "choices",
                      "value": {"choices": [verdict]}})
    if rating:
        items.append({"from_name": "rating", "to_name": "instruction", "type": "rating", "value": {"rating": rating}})
    if comment:
        items.append({"from_name": "comment", "to_name": "instruction", "type": "textarea",
                      "value": {"text": [comment]}})
    return items


def got_output(df: pl.DataFrame, record_id: str) -> str:
    return df.filter(pl.col("id") == record_id)["output"][0]


def task_ids(conn, project: str) -> dict[str, int]:
    [proj] = [p for p in conn.sdk.projects.list(title=project) if p.title == project]
    return {t.data["record_id"]: t.id for t in conn.sdk.tasks.list(project=proj.id, fields="all")}


def test_push_annotate_pull(label_studio, annotators, project_name, tmp_path):
    df = review_table()
    ids = df["id"].to_list()
    table = write_table(df, tmp_path / "curated.parquet")
    pushed = run_cli("review", "push", table, "--project", project_name, env=label_studio.env())
    assert pushed.returncode == 0, pushed.stderr
    assert label_studio.token not in pushed.stdout + pushed.stderr

    conn = label_studio.connect()
    tasks = task_ids(conn, project_name)
    assert set(tasks) == set(ids)
    first = conn.sdk.tasks.get(tasks[ids[0]])
    [pred] = first.predictions
    # one version per push (Label Studio prefills only the project's): two rounds, two teachers -> mixed
    assert (pred.model_version, pred.score) == ("mixed", 5.0)
    assert pred.result[0]["value"]["text"] == ["Paris"]          # the answer box is prefilled

    # what the labeling page loads for an annotator: the next task, its answer prefilled
    with closing(login(label_studio.url, ANN, ANNOTATORS[ANN])) as browser:
        project_id = conn.sdk.tasks.get(tasks[ids[0]]).project
        page = browser.get(f"/api/projects/{project_id}/next").json()
    [prefill] = page["predictions"]
    assert prefill["result"][0]["value"]["text"] == [got_output(df, page["data"]["record_id"])]

    ann, bob = annotators[ANN], annotators[BOB]
    ann.annotations.create(id=tasks[ids[0]], result=result("accept", "Paris"))
    ann.annotations.create(id=tasks[ids[1]], result=result("reject", "50 C"))
    ann.annotations.create(id=tasks[ids[2]], result=result("accept", "Open the app, tap Card, then Freeze."))
    ann.annotations.create(id=tasks[ids[3]], result=result("accept", "hello", rating=4, comment="clear"))
    ann.annotations.create(id=tasks[ids[4]], result=result("accept", "Yes"))
    bob.annotations.create(id=tasks[ids[4]], result=result("reject", "Yes", comment="91 = 7 x 13"))
    ann.annotations.create(id=tasks[ids[5]], result=result("accept", "A cat sat on the mat."))
    bob.annotations.create(id=tasks[ids[5]], result=result("accept", "A cat sat."))
    ann.annotations.create(id=tasks[ids[6]], result=[], was_cancelled=True)

    out = tmp_path / "reviewed.parquet"
    pulled = run_cli("review", "pull", "--project", project_name, "--out", out, "--hf-dataset", tmp_path / "hf",
                     "--license", "cc-by-4.0", env=label_studio.env())
    assert pulled.returncode == 0, pulled.stderr
    check_card(tmp_path / "hf", project_name)
    got = {r["id"]: r for r in read_table(out).to_dicts()}
    assert list(got) == ids                                       # every record, in push order
    status = {i: got[i]["status"] for i in ids}
    assert status == dict(zip(ids, ["accepted", "rejected", "edited", "accepted", "rejected", "edited",
                                    "pending", "pending"]))

    r = [got[i] for i in ids]
    assert r[0]["output"] == "Paris" and r[0]["review"]["annotator"] == ANN
    assert r[0]["review"]["original_output"] is None and r[0]["review"]["agreement"] == 1.0
    assert r[1]["output"] == "50 C"
    assert r[2]["output"] == "Open the app, tap Card, then Freeze."
    assert r[2]["review"]["original_output"] == "Call us."
    assert r[2]["messages"][-1]["content"] == "Open the app, tap Card, then Freeze."
    assert (r[3]["review"]["rating"], r[3]["review"]["comment"]) == (4, "clear")
    assert (r[4]["review"]["annotator"], r[4]["review"]["agreement"]) == (BOB, 0.5)
    assert r[4]["review"]["comment"] == "91 = 7 x 13"
    assert r[5]["output"] == "A cat sat on the mat." and r[5]["review"]["original_output"] == "A cat sat."
    assert (r[5]["review"]["annotator"], r[5]["review"]["agreement"]) == (f"{ANN}, {BOB}", 1.0)
    assert r[6]["review"] is None and r[7]["review"] is None
    for rec in r:
        assert rec["review"] is None or rec["review"]["reviewed_at"].startswith("20")
    # lineage survives the round trip
    assert [rec["teacher"] for rec in r] == ["openai:gpt-4o-mini"] * 7 + [None]
    assert r[0]["parents"] == ["seed-1"] and r[0]["scores"]["judge_score"] == 5.0
    assert (r[7]["source"], r[7]["round"], r[7]["scores"]["uncertainty"]) == ("pool", 2, 0.8)

    stats = review_status(conn, project_name)
    assert (stats.tasks, stats.reviewed, dict(stats.verdicts)) == (8, 6, {"accepted": 2, "rejected": 2, "edited": 2})
    assert (stats.multi, stats.agreement) == (2, 0.75)
    assert stats.skipped["annotation_skipped_by_annotator"] == 1
    shown = run_cli("review", "status", "--project", project_name, env=label_studio.env())
    assert shown.returncode == 0 and "75.0% over 2 record(s)" in shown.stdout


def check_card(folder, project: str) -> None:
    """The dataset card of the pulled records: counts by status and by reviewer, as annotated above."""
    card = DatasetCard.load(folder / "README.md")
    facts = card.data.seedloop
    assert card.data.license == "cc-by-4.0" and facts["stage"] == "review" and facts["rows"] == 8
    assert facts["by_status"] == {"accepted": 2, "edited": 2, "pending": 2, "rejected": 2}
    assert facts["reviewers"] == {ANN: 5, BOB: 2}   # the record both kept counts for each of them
    assert facts["teachers"] == {"openai:gpt-4o-mini": 7}
    assert facts["settings"] == {"project": project, "reviewed_only": False}
    assert f"| {ANN} | 5 |" in card.text and "| pending | 2 |" in card.text
    assert datasets.load_from_disk(str(folder)).num_rows == 8


def test_push_twice_and_duplicate_rows_make_no_duplicate_tasks(label_studio, project_name):
    conn = label_studio.connect()
    df = review_table()
    first = push_records(conn, df, project_name, batch_size=3)
    assert (first.imported, first.batches, first.project.created) == (8, 3, True)
    again = push_records(conn, pl.concat([df, df]), project_name)
    assert (again.imported, again.project.created) == (0, False)
    assert again.skipped == {"duplicate_id_in_table": 8, "already_in_project": 8}
    assert conn.sdk.projects.get(first.project.id).task_number == 8
    records, stats = pull_records(conn, project_name)
    assert records.height == 8 and stats.reviewed == 0


def test_unknown_project_wrong_token_and_foreign_project(label_studio, project_name, tmp_path):
    out = tmp_path / "never.parquet"
    missing = run_cli("review", "pull", "--project", project_name, "--out", out, env=label_studio.env())
    assert missing.returncode == 2 and f"no Label Studio project called '{project_name}'" in missing.stderr
    assert not out.exists()

    # a JWT with a forged signature gets past the SDK's local check and is refused by the server
    head, payload, signature = label_studio.token.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    for bad in ("not-a-real-token-0123456789", forged):
        refused = run_cli("review", "status", "--project", project_name,
                          env=label_studio.env(LABEL_STUDIO_API_KEY=bad))
        assert refused.returncode == 2, refused.stderr
        assert "refused the API key in LABEL_STUDIO_API_KEY" in refused.stderr
        assert bad not in refused.stdout + refused.stderr and signature not in refused.stderr

    conn = label_studio.connect()
    conn.sdk.projects.create(title=project_name, label_config='<View><Text name="t" value="$t"/></View>')
    table = write_table(review_table(), tmp_path / "t.jsonl")
    foreign = run_cli("review", "push", table, "--project", project_name, env=label_studio.env())
    assert foreign.returncode == 1 and "was not made for review" in foreign.stderr
