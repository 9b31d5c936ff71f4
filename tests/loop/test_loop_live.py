"""The loop end to end against a real Label Studio, with a fake teacher (real wire format) and a tiny
student built from a config, so two rounds take about a minute each on 2 cores.

- two cycles with annotations made through the API between them: round 2 trains on them;
- two cycles whose pool a real teacher wrote (SmolLM2 on llama.cpp's server), the automatic reviewer deciding;
- SIGKILL inside each step in turn (at the end of its work, before the manifest records it; generate
  and train also half-way), then re-run: the same final state as an uninterrupted run, no duplicate
  task, no record annotated twice, no record trained twice, no teacher request paid twice.
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

from tests.conftest import EXAMPLE_SEEDS, ROOT, run_cli

pytestmark = pytest.mark.slow
ANN = "ann@example.com"
K = 5
TEACHER = "openai:smollm2"     # the llama_server fixture's model alias


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


def test_two_cycles_with_a_real_llama_cpp_teacher(llama_server, tiny_student, tmp_path):
    """The same loop with its generation done by the packaged SmolLM2 on llama.cpp (llama-cpp-python's
    server, the llama_server fixture): a small pool of real model output goes through curation, training,
    selection and the automatic reviewer into round 2. No Label Studio: reviewed.parquet carries the verdicts."""
    ws = tmp_path / "ws"
    res = run_cli("init", ws, "--seeds", EXAMPLE_SEEDS, "--teacher", TEACHER, "--n", "4", "--student", tiny_student,
                  "--k", "2", "--auto-review", "--train-set", "max_steps=2", "--train-set", "eval_every=2",
                  "--train-set", "save_every=2")
    assert res.returncode == 0, res.stderr
    res = run_cli("cycle", ws, "--until", "2", timeout=1500,
                  env={"OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": ""})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "round 2 done" in res.stderr

    # round 0: every generated row is the llama.cpp teacher's, and the ledger counts what it answered
    generated = pl.read_parquet(ws / "rounds/000/generated.parquet")
    assert generated.height >= 1 and set(generated["teacher"]) == {TEACHER}
    assert set(generated["source"]) == {"generated"} and generated["output"].is_not_null().all()
    gen = manifest(ws, 0)["steps"]["generate"]
    assert gen["requests_sent"] > 0 and gen["requests_cached"] == 0
    from synth import RequestCache

    store = RequestCache(ws / "cache.sqlite")
    ledger = store.ledger("loop:generate")
    store.close()
    assert [(r.teacher, r.requests) for r in ledger] == [(TEACHER, gen["requests_sent"])]
    assert all(r.output_tokens > 0 for r in ledger)
    pool = pl.read_parquet(ws / "rounds/000/pool.parquet")
    assert 1 <= pool.height <= generated.height and set(pool["id"]) <= set(generated["id"])

    # round 1 trains on seeds and the model's rows; round 2 on the automatic reviewer's verdicts of round 1
    evals = set(pl.read_parquet(ws / "eval.parquet")["id"])
    train1 = pl.read_parquet(ws / "rounds/001/train.parquet")
    assert set(pool["id"]) - evals <= set(train1["id"]) and not evals & set(train1["id"])
    picked = pl.read_parquet(ws / "rounds/001/selection.parquet")["id"].to_list()
    reviewed = pl.read_parquet(ws / "rounds/001/reviewed.parquet")
    assert 1 <= len(picked) <= 2 and sorted(reviewed["id"]) == sorted(picked) and set(picked) <= set(pool["id"])
    labels = pl.read_parquet(ws / "rounds/002/labels.parquet")
    assert dict(zip(labels["id"], labels["status"])) == dict(zip(reviewed["id"], reviewed["status"]))
    train2 = pl.read_parquet(ws / "rounds/002/train.parquet")
    kept = reviewed.filter(pl.col("status") != "rejected")
    assert dict(zip(kept["id"], kept["output"])).items() <= dict(zip(train2["id"], train2["output"])).items()
    assert not set(reviewed.filter(pl.col("status") == "rejected")["id"]) & set(train2["id"])
    m2 = manifest(ws, 2)
    assert m2["steps"]["train"]["init_adapter"] == str(ws / "rounds/001/adapter")
    assert m2["steps"]["train"]["steps"] == 2 and m2["counts"]["labels"] == len(picked)
    assert not set(m2["selected_ids"]) & set(picked)                      # nothing is picked twice
    assert manifest(ws, 0)["steps"]["generate"] == gen                    # round 2 generated nothing more


STEPS = [(0, "generate"), (0, "curate"), (1, "pull"), (1, "training_set"), (1, "train"), (1, "evaluate"),
         (1, "promote"), (1, "select"), (1, "push"), (1, "auto_review")]


def kill_at_end_of(ws: Path, environ: dict, round_no: int, step: str) -> None:
    """`seedloop cycle`, SIGKILLed once `step` of `round_no` has done its work and before the manifest
    records it (tests/loop/killpoint.py): the kill lands inside the step, every time."""
    res = subprocess.run([sys.executable, "-m", "tests.loop.killpoint", str(round_no), step, "cycle", str(ws)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400", **environ})
    assert res.returncode == -signal.SIGKILL, f"{step}: rc {res.returncode}\n{res.stderr[-3000:]}"
    ran = f"round {round_no} · {step}"
    assert any(line.startswith(ran) and "done before" not in line for line in res.stderr.splitlines()), res.stderr
    path = ws / "rounds" / f"{round_no:03d}" / "manifest.json"
    recorded = json.loads(path.read_text())["steps"].get(step, {}) if path.is_file() else {}
    assert recorded.get("status") != "done", recorded


def kill_during(ws: Path, environ: dict, step: str, round_no: int, fake_llm) -> bool:
    """Start `seedloop cycle`, SIGKILL it once `step` of `round_no` is under way and has made progress
    (generate: 10 answers; train: a checkpoint); False if it finished first."""
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
    for round_no, step in STEPS:
        if step in ("generate", "train"):             # half-way too: resumed from the cache / a checkpoint
            assert kill_during(ws, environ, step, round_no, fake_llm), step
        kill_at_end_of(ws, environ, round_no, step)   # done, but not recorded: the re-run must not redo harm
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
