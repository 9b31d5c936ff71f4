"""A broken seedloop.yaml names the key; a missing seed file names the path; an unreachable Label Studio
stops the round before any training, and says why."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLE_SEEDS, free_port, run_cli


def make_workspace(tmp_path: Path, *extra: str) -> Path:
    ws = tmp_path / "ws"
    res = run_cli("init", ws, "--seeds", EXAMPLE_SEEDS, *extra)
    assert res.returncode == 0, res.stderr
    return ws


def edit(ws: Path, old: str, new: str) -> None:
    path = ws / "seedloop.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_init_writes_config_seeds_and_a_disjoint_eval_split(tmp_path):
    import polars as pl

    ws = make_workspace(tmp_path)
    assert (ws / "seedloop.yaml").is_file() and (ws / "seeds.jsonl").is_file()
    evals, train = pl.read_parquet(ws / "eval.parquet"), pl.read_parquet(ws / "seeds_train.parquet")
    assert evals.height == 7 and train.height == 29
    assert not set(evals["id"]) & set(train["id"])
    again = run_cli("init", ws, "--seeds", EXAMPLE_SEEDS)
    assert again.returncode != 0 and "already a workspace" in again.stderr


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    ws = make_workspace(tmp_path)
    edit(ws, "  k: 12", "  kk: 12")
    res = run_cli("cycle", ws)
    assert res.returncode != 0
    assert "unknown key 'select.kk'" in res.stderr and "did you mean 'select.k'" in res.stderr
    assert not (ws / "rounds").exists()


def test_wrong_type_and_bad_choice_are_named(tmp_path):
    ws = make_workspace(tmp_path)
    edit(ws, "  k: 12", "  k: twelve")
    res = run_cli("status", ws)
    assert res.returncode != 0 and "'select.k' should be a whole number" in res.stderr
    edit(ws, "  k: twelve", "  k: 12")
    edit(ws, "unreviewed: include", "unreviewed: maybe")
    res = run_cli("cycle", ws)
    assert res.returncode != 0 and "'train.unreviewed' should be one of include, exclude" in res.stderr


def test_missing_seed_file_names_the_path(tmp_path):
    res = run_cli("init", tmp_path / "ws", "--seeds", tmp_path / "nope.jsonl")
    assert res.returncode != 0 and "nope.jsonl" in res.stderr and "not found" in res.stderr
    ws = make_workspace(tmp_path)
    (ws / "seeds.jsonl").unlink()
    res = run_cli("cycle", ws)
    assert res.returncode != 0 and "seeds.jsonl" in res.stderr and "'seeds'" in res.stderr


def test_not_a_workspace(tmp_path):
    res = run_cli("cycle", tmp_path)
    assert res.returncode != 0 and "not a seedloop workspace" in res.stderr and "seedloop init" in res.stderr


def test_unreachable_label_studio_stops_before_training(tmp_path):
    ws = make_workspace(tmp_path, "--project", "loop-test")
    url = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    res = run_cli("cycle", ws, env={"LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": "secret-token-123"},
                  timeout=180)
    assert res.returncode != 0
    assert url in res.stderr and "secret-token-123" not in res.stderr + res.stdout
    assert not list(ws.glob("rounds/*/adapter"))


def test_label_studio_project_without_address(tmp_path):
    import os

    ws = make_workspace(tmp_path, "--project", "loop-test")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO")}
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "seedloop", "cycle", str(ws)], capture_output=True, text=True,
                         env={**env, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}, timeout=120)
    assert res.returncode != 0 and "LABEL_STUDIO_URL" in res.stderr


def test_every_bad_key_is_reported_at_once_trainer_overrides_included(tmp_path):
    ws = make_workspace(tmp_path)
    edit(ws, "  k: 12", "  kk: 12")
    edit(ws, "  concurrency: 4", "  concurrency: 0")
    edit(ws, "  overrides: {}", "  overrides: {epochs: two, lr: -1, epochz: 3}")
    res = run_cli("cycle", ws)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    msg = " ".join(res.stderr.split())
    assert "seedloop.yaml: 5 problems" in msg
    for needle in ("unknown key 'select.kk' (did you mean 'select.k'?)",
                   "'generate.concurrency' should be at least 1, found 0",
                   "'train.overrides.epochs': 'epochs' should be a whole number, found 'two'",
                   "'train.overrides.lr': 'lr' should be positive",
                   "unknown key 'train.overrides.epochz' (did you mean 'train.overrides.epochs'?)"):
        assert needle in msg, needle
    assert not (ws / "rounds").exists() and not (ws / "cache.sqlite").exists()


def test_a_bad_trainer_override_alone_fails_on_load_naming_file_and_key(tmp_path):
    ws = make_workspace(tmp_path)
    edit(ws, "  overrides: {}", "  overrides: {epochs: two}")
    res = run_cli("status", ws)   # any command that loads the config; `cycle` would fail the same way
    assert res.returncode == 2
    assert f"{ws / 'seedloop.yaml'}: 'train.overrides.epochs': 'epochs' should be a whole number, found 'two'" in \
        " ".join(res.stderr.split())


def test_init_refuses_bad_train_set_before_writing(tmp_path):
    res = run_cli("init", tmp_path / "ws", "--seeds", EXAMPLE_SEEDS, "--train-set", "epochs=two")
    assert res.returncode == 2 and "'train.overrides.epochs'" in res.stderr
    assert not (tmp_path / "ws").exists()


def test_a_folder_given_as_seed_file_is_called_a_folder(tmp_path):
    (tmp_path / "seeds.jsonl").mkdir()
    res = run_cli("init", tmp_path / "ws", "--seeds", tmp_path / "seeds.jsonl")
    assert res.returncode == 2 and "is a directory" in res.stderr and "not found" not in res.stderr


def test_bad_task_metric_and_recipe_keys_are_named(tmp_path):
    ws = make_workspace(tmp_path)
    edit(ws, "  task: auto", "  task: classify")
    edit(ws, "  metric: auto", "  metric: f1")
    res = run_cli("status", ws)
    msg = " ".join(res.stderr.split())
    assert res.returncode == 2 and "2 problems" in msg
    assert "'train.task' should be one of auto, classification, generation, found 'classify'" in msg
    assert "'promote.metric' should be one of auto, eval_loss, accuracy, rouge_l, found 'f1'" in msg
    edit(ws, "  task: classify", "  task: auto")
    edit(ws, "  metric: f1", "  metric: accuracy")
    # task auto: a key of either recipe is good, its type is checked by that recipe, a key of neither fails
    edit(ws, "  overrides: {}", "  overrides: {probe_c: lots, max_steps: 4, epochz: 2}")
    msg = " ".join(run_cli("cycle", ws).stderr.split())
    assert "'train.overrides.probe_c': 'probe_c' should be a number, found 'lots'" in msg
    assert "unknown key 'train.overrides.epochz' (did you mean 'train.overrides.epochs'?)" in msg
    assert "max_steps" not in msg and not (ws / "rounds").exists()


def test_a_key_of_the_other_task_and_a_config_of_the_other_task_are_named(tmp_path):
    ws = make_workspace(tmp_path)
    edit(ws, "  task: auto", "  task: classification")
    edit(ws, "  overrides: {}", "  overrides: {max_steps: 4}")
    res = run_cli("status", ws)
    assert res.returncode == 2
    assert ("unknown key 'train.overrides.max_steps' (a generation setting; train.task and train.config select "
            "classification)") in " ".join(res.stderr.split())
    edit(ws, "  overrides: {max_steps: 4}", "  overrides: {}")
    edit(ws, "  config: auto", "  config: lora")
    res = run_cli("status", ws)
    assert res.returncode == 2
    assert "'train.config': not a classification config: lora: unknown key" in " ".join(res.stderr.split())


def test_init_names_a_missing_pool_and_an_evaluation_file_without_answers(tmp_path):
    res = run_cli("init", tmp_path / "ws", "--seeds", EXAMPLE_SEEDS, "--pool", tmp_path / "nope.jsonl")
    assert res.returncode == 2 and "nope.jsonl" in res.stderr and "pool file not found" in res.stderr
    evals = tmp_path / "eval.jsonl"
    evals.write_text('{"instruction": "Which intent is this?", "input": "my card is lost", "output": "lost_card"}\n'
                     '{"instruction": "Which intent is this?", "input": "where is my card"}\n')
    res = run_cli("init", tmp_path / "ws", "--seeds", EXAMPLE_SEEDS, "--eval", evals)
    msg = " ".join(res.stderr.split())
    assert res.returncode == 2 and f"{evals} field 'output': 1 of 2 rows have no output" in msg
    assert not (tmp_path / "ws").exists()
