"""The loop end to end against a real Label Studio, with a fake teacher (real wire format) and a tiny
student built from a config, so two rounds take about a minute each on 2 cores.

- two cycles with annotations made through the API between them: round 2 trains on them;
- SIGKILL during each step in turn, then re-run: the same final state as an uninterrupted run, no
  duplicate task, no record trained twice, no teacher request paid twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import EXAMPLE_SEEDS, run_cli

pytestmark = pytest.mark.slow
ANN = "ann@example.com"
K = 5


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory) -> Path:
    import train

    return train.tiny_llama(tmp_path_factory.mktemp("student") / "tiny")


def init(ws: Path, student: Path, fake_llm, project: str | None, *extra: str):
    args = ["init", ws, "--seeds", EXAMPLE_SEEDS, "--teacher", "openai:fake", "--n", "24", "--student", student,
            "--k", str(K), "--train-set", "max_steps=4", "--train-set", "eval_every=2", "--train-set", "save_every=2",
            *extra]
    if project:
        args += ["--project", project]
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr


def env(fake_llm, label_studio=None) -> dict:
    e = {"OPENAI_BASE_URL": fake_llm.url, "OPENAI_API_KEY": "sk-fake"}
    return {**e, **(label_studio.env() if label_studio else {})}


def cycle(ws: Path, environ: dict):
    res = run_cli("cycle", ws, env=environ, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def tasks_of(conn, project: str) -> list:
    [proj] = [p for p in conn.sdk.projects.list(title=project) if p.title == project]
    return list(conn.sdk.tasks.list(project=proj.id, fields="all"))


def manifest(ws: Path, n: int) -> dict:
    return json.loads((ws / "rounds" / f"{n:03d}" / "manifest.json").read_text())


def verdict(choice: str, text: str | None) -> list:
    items = [{"from_name": "verdict", "to_name": "instruction", "type": "choices", "value": {"choices": [choice]}}]
    if text is not None:
        items.insert(0, {"from_name": "output", "to_name": "instruction", "type": "textarea",
                         "value": {"text": [text]}})
    return items


def test_two_cycles_round_two_trains_on_the_labels_of_round_one(label_studio, annotators, project_name,
                                                                 tiny_student, fake_llm, tmp_path):
    ws = tmp_path / "ws"
    init(ws, tiny_student, fake_llm, project_name)
    environ = env(fake_llm, label_studio)
    first = cycle(ws, environ)
    assert label_studio.token not in first.stdout + first.stderr
    assert label_studio.token not in (ws / "rounds" / "001" / "manifest.json").read_text()
    conn = label_studio.connect()
    tasks = tasks_of(conn, project_name)
    picked = manifest(ws, 1)["selected_ids"]
    assert sorted(t.data["record_id"] for t in tasks) == sorted(picked) and len(picked) == K

    # an annotator works through the round-1 tasks: accept, edit, reject
    ann = annotators[ANN]
    by_id = {t.data["record_id"]: t for t in tasks}
    plan = {picked[0]: ("Accept", None), picked[1]: ("Accept", "An edited answer from a human."),
            picked[2]: ("Reject", None)}
    for rid, (choice, text) in plan.items():
        ann.annotations.create(id=by_id[rid].id, result=verdict(choice, text if text else by_id[rid].data["output"]
                                                                if choice == "Accept" else None))
    # `watch` sees the 3 new annotations and runs the second cycle
    watched = run_cli("watch", ws, "--every", "3", "--interval", "1", "--once", env=environ, timeout=600)
    assert watched.returncode == 0, watched.stderr[-3000:]
    assert "3 new annotations" in watched.stderr and "round 2 done" in watched.stderr
    m2 = manifest(ws, 2)
    labels = pl.read_parquet(ws / "rounds/002/labels.parquet")
    assert dict(zip(labels["id"], labels["status"])) == {picked[0]: "accepted", picked[1]: "edited",
                                                         picked[2]: "rejected"}
    trained = pl.read_parquet(ws / "rounds/002/train.parquet")
    human = trained.filter(pl.col("status").is_in(["accepted", "edited"]) & pl.col("id").is_in(picked[:3]))
    assert sorted(human["id"]) == sorted(picked[:2])                      # the rejected one is not trained on
    assert trained.filter(pl.col("id") == picked[1])["output"][0] == "An edited answer from a human."
    assert picked[2] not in set(trained["id"])
    assert trained["id"].n_unique() == trained.height
    evals = set(pl.read_parquet(ws / "eval.parquet")["id"])
    assert not evals & set(trained["id"])                                 # the fixed split is never trained on
    # warm start from round 1 and the manifest agrees with the files
    assert m2["steps"]["train"]["init_adapter"] == str(ws / "rounds/001/adapter")
    assert m2["counts"]["labels"] == labels.height == 3 and m2["counts"]["labels_gained"] == 3
    assert m2["counts"]["train_rows"] == trained.height
    assert m2["selected_ids"] == pl.read_parquet(ws / "rounds/002/selection.parquet")["id"].to_list()
    assert not set(m2["selected_ids"]) & set(picked)                      # nothing is sent twice
    assert len(tasks_of(conn, project_name)) == 2 * K
    status = run_cli("status", ws, "--json", env=environ)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert [r["labels"] for r in info["rounds"]] == [0, 3]
    assert [r["train_rows"] for r in info["rounds"]] == [manifest(ws, 1)["counts"]["train_rows"], trained.height]
    assert info["rounds"][1]["metric"] == json.loads((ws / "rounds/002/eval.json").read_text())["loss"]
    assert info["promoted_adapter"].endswith("adapter") and Path(info["plot"]).is_file()


STEPS = ["generate", "curate", "pull", "training_set", "train", "evaluate", "promote", "select", "push",
         "auto_review"]


def kill_during(ws: Path, environ: dict, step: str, round_no: int, fake_llm) -> bool:
    """Start `seedloop cycle`, SIGKILL it once `step` of `round_no` is under way; False if it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "seedloop", "cycle", str(ws)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400", **environ})
    marker = f"round {round_no} · {step}"
    seen = threading.Event()

    def read():
        for line in proc.stderr:
            if line.startswith(marker) and "done before" not in line:
                seen.set()
    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 300
    while not seen.is_set() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if step == "generate":   # wait until some requests are answered and cached
        while len(fake_llm.seen) < 10 and proc.poll() is None:
            time.sleep(0.01)
    if step == "train":      # wait for a checkpoint, so the re-run has something to resume
        ckpt = ws / f"rounds/{round_no:03d}/adapter/checkpoints"
        while not list(ckpt.glob("step-*")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return not finished


def final_state(ws: Path) -> dict:
    state = {}
    for n in (1, 2):
        d = ws / f"rounds/{n:03d}"
        state[n] = {"train": sorted(pl.read_parquet(d / "train.parquet")["id"]),
                    "selected": pl.read_parquet(d / "selection.parquet")["id"].to_list(),
                    "promoted": manifest(ws, n)["promoted"],
                    "steps": json.loads((d / "adapter/metrics.json").read_text())["steps"]}
    return state


def test_sigkill_during_each_step_then_rerun_converges(label_studio, tiny_student, fake_llm, tmp_path):
    # the reference: two uninterrupted cycles, automatic reviewer on the selection table
    ref = tmp_path / "ref"
    init(ref, tiny_student, fake_llm, None, "--auto-review")
    cycle(ref, env(fake_llm))
    cycle(ref, env(fake_llm))
    reference = final_state(ref)

    ws = tmp_path / "ws"
    project = f"crash-{os.getpid()}-{int(time.time())}"
    init(ws, tiny_student, fake_llm, project, "--auto-review")
    fake_llm.seen.clear()
    fake_llm.plan.latency = 0.05    # slow enough to be killed half-way through generation
    environ = env(fake_llm, label_studio)
    killed = [s for s in STEPS if kill_during(ws, environ, s, 0 if s in ("generate", "curate") else 1, fake_llm)]
    assert {"generate", "curate", "train", "select"} <= set(killed), killed
    cycle(ws, environ)                                # finishes round 1
    assert kill_during(ws, environ, "train", 2, fake_llm)
    cycle(ws, environ)                                # round 2, resumed
    got = final_state(ws)
    # the same records trained and selected as the uninterrupted run, and each training ran its steps once
    for n in (1, 2):
        assert got[n]["train"] == reference[n]["train"] == sorted(set(got[n]["train"]))
        assert got[n]["steps"] == reference[n]["steps"] == 4
    assert got[1]["selected"] == reference[1]["selected"]
    conn = label_studio.connect()
    tasks = tasks_of(conn, project)
    ids = Counter(t.data["record_id"] for t in tasks)
    assert max(ids.values()) == 1 and len(ids) == 2 * K                      # no duplicate task
    assert all(len(t.annotations or []) == 1 for t in tasks)                  # each annotated once
    # no teacher request paid twice: the same records as the uninterrupted run, and the only requests
    # sent again are those in flight at the kill (answered, but the process died before caching them)
    generated = [sorted(pl.read_parquet(w / "rounds/000/generated.parquet")["id"]) for w in (ws, ref)]
    assert generated[0] == generated[1]
    bodies = Counter(json.dumps(s.body, sort_keys=True) for s in fake_llm.seen)
    assert sum(c - 1 for c in bodies.values()) <= 8
