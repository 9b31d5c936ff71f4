"""The loop with a classifier student: a given pool and evaluation file, two rounds on a tiny random
BERT (a few seconds of training each), the automatic reviewer judging labels exactly, promotion by
accuracy, and a re-run after a kill that converges.

The messages are Banking77's (shipped with seedloop): real, varied text, so curation keeps them.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from huggingface_hub import DatasetCard

from seedloop.core.data import banking77_rows
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
INSTRUCTION = "Which banking intent does this customer message express?"
KNOWN = ("card_arrival", "exchange_rate")       # in the seeds
NEW = "pin_blocked"                             # only in the pool: the student cannot answer it in round 1
K = 6


def write_jsonl(path: Path, rows: list[tuple[str, str | None]]) -> Path:
    with path.open("w") as fh:
        for text, label in rows:
            fh.write(json.dumps({"instruction": INSTRUCTION, "input": text, "output": label}) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """seeds (3 per known intent), pool (8 per intent, the new one included), eval (4 per known intent)."""
    root = tmp_path_factory.mktemp("intents")
    by = {label: [t for t, lab in banking77_rows() if lab == label][:15] for label in (*KNOWN, NEW)}
    seeds = [(t, lab) for lab in KNOWN for t in by[lab][:3]]
    pool = [(t, lab) for lab in (*KNOWN, NEW) for t in by[lab][3:11]]
    evals = [(t, lab) for lab in KNOWN for t in by[lab][11:15]]
    return {"seeds": write_jsonl(root / "seeds.jsonl", seeds), "pool": write_jsonl(root / "pool.jsonl", pool),
            "eval": write_jsonl(root / "eval.jsonl", evals), "pool_rows": pool, "eval_rows": evals}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    import train

    return train.tiny_bert(tmp_path_factory.mktemp("encoder") / "tiny-bert")


def init(ws: Path, files: dict, encoder: Path, *extra: str):
    res = run_cli("init", ws, "--seeds", files["seeds"], "--pool", files["pool"], "--eval", files["eval"],
                  "--auto-review", "--unreviewed", "exclude", "--k", str(K), "--student", encoder,
                  "--train-set", "epochs=2", "--train-set", "max_length=32", *extra)
    assert res.returncode == 0, res.stderr
    return res


def manifest(ws: Path, n: int) -> dict:
    return json.loads((ws / f"rounds/{n:03d}/manifest.json").read_text())


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory, files, encoder) -> Path:
    ws = tmp_path_factory.mktemp("loop") / "ws"
    init(ws, files, encoder)
    res = run_cli("cycle", ws, "--until", "2", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return ws


def test_round_zero_curates_the_given_pool_without_a_teacher(two_rounds, files):
    ws = two_rounds
    steps = manifest(ws, 0)["steps"]
    assert "generate" not in steps and steps["load_pool"]["records"] == len(files["pool_rows"])
    assert not (ws / "cache.sqlite").exists()                      # no teacher request, not even a cache
    pool = pl.read_parquet(ws / "rounds/000/pool.parquet")
    assert set(pool["source"]) == {"pool"} and set(pool["instruction"]) == {INSTRUCTION}
    # the messages differ and share one instruction: compared by message, nearly all are kept (the
    # instruction compared too would make every pair look like a duplicate)
    assert pool.height >= 0.8 * len(files["pool_rows"])
    evals = pl.read_parquet(ws / "eval.parquet")
    assert sorted(evals["input"]) == sorted(t for t, _ in files["eval_rows"])
    assert pl.read_parquet(ws / "seeds_train.parquet").height == 6   # every seed trains: eval came apart
    cards = [DatasetCard.load(ws / f"rounds/{n:03d}/README.md").data.seedloop for n in (0, 1, 2)]
    assert cards[0]["rows"] == pool.height and cards[0]["by_source"] == {"pool": pool.height}
    assert cards[0]["dropped"] == manifest(ws, 0)["steps"]["curate"]["dropped"]
    assert [c["rows"] for c in cards[1:]] == [pl.read_parquet(ws / f"rounds/{n:03d}/train.parquet").height
                                              for n in (1, 2)]
    assert all(c["decontamination"] == ["eval.parquet"] for c in cards)


def test_a_classifier_trains_warm_starts_and_never_sees_unreviewed_pool_rows(two_rounds, encoder):
    ws = two_rounds
    m1, m2 = manifest(ws, 1), manifest(ws, 2)
    for m in (m1, m2):
        assert m["steps"]["train"]["task"] == "classification" and m["steps"]["train"]["base"] == str(encoder)
    assert (ws / "rounds/001/adapter/classifier.json").is_file()
    assert m2["steps"]["train"]["init_adapter"] == str(ws / "rounds/001/adapter")
    pool_ids = set(pl.read_parquet(ws / "rounds/000/pool.parquet")["id"])
    first = pl.read_parquet(ws / "rounds/001/train.parquet")
    assert not pool_ids & set(first["id"]) and first.height == 6   # train.unreviewed: exclude
    second = pl.read_parquet(ws / "rounds/002/train.parquet")
    reviewed = pl.read_parquet(ws / "rounds/001/reviewed.parquet")
    assert pool_ids & set(second["id"]) == set(reviewed["id"])       # the reviewed picks, and only they
    labels = json.loads((ws / "rounds/002/adapter/classifier.json").read_text())["labels"]
    if NEW in set(reviewed["output"]):
        assert NEW in labels                                         # a label first seen in review is learnt


def test_the_automatic_reviewer_judges_labels_exactly(two_rounds):
    ws = two_rounds
    picks = pl.read_parquet(ws / "rounds/001/selection.parquet")
    pool = pl.read_parquet(ws / "rounds/000/pool.parquet")
    truth = dict(zip(pool["id"], pool["output"]))
    student = dict(zip(picks["id"], picks["output"]))
    reviewed = pl.read_parquet(ws / "rounds/001/reviewed.parquet")
    assert reviewed.height == K
    for row in reviewed.iter_rows(named=True):
        rid = row["id"]
        assert row["output"] == truth[rid]                                  # what trains is the answer key's
        assert row["status"] == ("accepted" if student[rid] == truth[rid] else "edited")
        assert row["review"]["original_output"] == (None if row["status"] == "accepted" else student[rid])
        assert row["source"] == "pool" and row["review"]["annotator"] == "auto-reviewer"   # never "human"
    # the round-1 student knows only the seeds' labels, so a pick of the new intent is always an edit
    assert all(s == "edited" for s, o in zip(reviewed["status"], reviewed["output"]) if o == NEW)


def test_promotion_is_by_accuracy_and_status_shows_it(two_rounds):
    ws = two_rounds
    acc = [json.loads((ws / f"rounds/{n:03d}/eval.json").read_text())["accuracy"] for n in (1, 2)]
    promote = manifest(ws, 2)["steps"]["promote"]
    assert promote["metric"] == "accuracy" and "accuracy" in promote["rule"]
    assert promote["promoted"] == (acc[1] >= acc[0])                   # tolerance 0, higher is better
    card = (ws / "rounds/001/adapter/README.md").read_text()             # round 1 is always promoted
    assert f"| accuracy | {acc[0]:.4g} |" in card and "pipeline_tag: text-classification" in card
    res = run_cli("status", ws, "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["rounds"]
    assert [r["metric"] for r in rows] == acc and {r["metric_name"] for r in rows} == {"accuracy"}
    table = run_cli("status", ws)
    assert "accuracy" in table.stdout and "macro_f1" in table.stdout and "given" in table.stdout


def test_a_rerun_after_a_kill_converges(two_rounds, tmp_path):
    """Round 2 cut short after training (its manifest says running, selection gone): the re-run skips
    pull, training set, training and evaluation, and selects the same items again."""
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(two_rounds, ws)
    before = pl.read_parquet(ws / "rounds/002/selection.parquet")["id"].to_list()
    m = manifest(ws, 2)
    m["status"] = "running"
    for step in ("select", "auto_review"):
        m["steps"].pop(step)
    (ws / "rounds/002/manifest.json").write_text(json.dumps(m))
    (ws / "rounds/002/selection.parquet").unlink()
    res = run_cli("cycle", ws, "--until", "2", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for step in ("pull", "training_set", "train", "evaluate"):
        assert f"round 2 · {step}: done before" in res.stderr, step
    assert pl.read_parquet(ws / "rounds/002/selection.parquet")["id"].to_list() == before
