"""The steps of a round. Each reads tables of the workspace and returns the table it produces.

Round 0 builds the pool: `generate` (teacher expands the training seeds) or `load_pool` (a pool given
to `init --pool`), then `curate` (dedup and decontamination against eval.parquet). Later rounds:
`pull` -> `training_set` -> `train` (a classifier or a generator: `plan_training`) -> `evaluate` ->
`promote` -> `select` -> `push` (and the automatic reviewer when configured).
Orchestration, skipping and the manifest live in cycle.py; these functions only compute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from seedloop.core.errors import ConfigError
from seedloop.core.record import conform, empty_frame
from seedloop.core.tables import read_table
from seedloop.loop.reviewer import mark_automatic
from seedloop.loop.workspace import AUTO_CONFIG, RECIPES, Workspace, config_tasks

LOWER_IS_BETTER = {"eval_loss": True, "accuracy": False, "rouge_l": False}
# promote.metric -> its key in eval.json; a classifier's cross-entropy is its `loss` too
METRIC_KEYS = {"eval_loss": "loss", "accuracy": "accuracy", "rouge_l": "rouge_l"}


def generate(ws: Workspace, config: dict, seeds: pl.DataFrame):
    """The teacher's records from the training seeds; every request goes through the workspace cache."""
    from synth.engine import Limits
    from synth.generate import run_generate
    from synth.prices import PriceTable
    from synth.teachers import make_teacher

    g = config["generate"]
    prices = PriceTable.load(None)
    teacher = make_teacher(config["teacher"])
    if g["max_cost"] is not None:
        prices.require(teacher.spec)
    options = {"classify": "auto"} if g["method"] == "self-instruct" else {}
    return run_generate(seeds, n=g["n"], teacher=teacher, cache=ws.cache, job="loop:generate", method=g["method"],
                        limits=Limits(concurrency=g["concurrency"]), prices=prices, max_cost=g["max_cost"],
                        seed=g["seed"], **options)


def load_pool(path: Path) -> pl.DataFrame:
    """A given pool (any seed-file format) as pool records: source 'pool', pending review. Their outputs,
    where present, are what the automatic reviewer checks against; they are trained on only with
    `train.unreviewed: include`."""
    from synth.seeds import load_seeds

    return load_seeds(path).with_columns(pl.lit("pool").alias("source"), pl.lit("pending").alias("status"))


def curate_pool(ws: Workspace, config: dict, rows: pl.DataFrame, evals: pl.DataFrame, where: str):
    """Dedup and quality rules, and decontamination against the fixed evaluation split.

    Rows that all share one instruction (a classification task: "Which intent is this message?") differ
    only in their input, so they are compared by it: the long common prefix would make every pair look
    like a duplicate, and every row look like a copy of an evaluation row. The output rule "copies the
    instruction" then looks at the input instead."""
    from curate.embed import Embedder
    from curate.pipeline import Against
    from curate.pipeline import curate_table as run_curate

    if config["curate"]["judge"]:
        raise ConfigError(f"{ws.config_path}: 'curate.judge' is not supported by `seedloop cycle` yet; "
                          "set it to null (or curate with `seedloop curate --judge` outside the loop)")
    shared = _shared_instruction(rows, evals)
    if shared is not None:
        rows, evals = _input_as_instruction(rows), _input_as_instruction(evals)
    against = Against.from_tables([("eval.parquet", evals)])
    embedder = Embedder(None, cache=ws.embeddings)
    try:
        result = run_curate(rows, embedder, threshold=config["curate"]["threshold"], against=against, where=where)
    finally:
        embedder.close()
    if shared is not None:
        result.kept = _restore_instruction(result.kept, shared)
        result.drops = _restore_instruction(result.drops, shared)
    return result


def _shared_instruction(*frames: pl.DataFrame) -> str | None:
    """The one instruction of every row, when every row also has an input; else None."""
    both = pl.concat([f.select("instruction", "input") for f in frames])
    instructions = both["instruction"].unique()
    if both.height == 0 or instructions.len() != 1 or both["input"].fill_null("").str.strip_chars().eq("").any():
        return None
    return instructions[0]


def _input_as_instruction(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col("input").alias("instruction"), pl.lit("").alias("input"))


def _restore_instruction(df: pl.DataFrame, shared: str) -> pl.DataFrame:
    return df.with_columns(pl.col("instruction").alias("input"), pl.lit(shared).alias("instruction"))


def label_studio(config: dict):
    """The project name and a checked connection, or (None, None) when the workspace has no Label Studio."""
    project = config["label_studio"]["project"]
    if not project:
        return None, None
    from curate.review import connect

    return project, connect(config["label_studio"]["url"] or os.environ.get("LABEL_STUDIO_URL"))


def pull(ws: Workspace, round_no: int, project: str | None, conn) -> pl.DataFrame:
    """Every record a reviewer has decided on so far (accepted, edited or rejected)."""
    if conn is None:
        parts = [read_table(p) for k in range(1, round_no)
                 if (p := ws.round_dir(k) / "reviewed.parquet").is_file()]
        df = pl.concat(parts, how="vertical_relaxed") if parts else empty_frame()
    else:
        from curate.review import UnknownProject, pull_records

        try:
            df = mark_automatic(pull_records(conn, project)[0])
        except UnknownProject:
            df = empty_frame()   # nothing pushed yet: the first round
    return conform(df.filter(pl.col("status") != "pending"), where="pulled labels")


def training_set(labels: pl.DataFrame, seeds: pl.DataFrame, pool: pl.DataFrame, evals: pl.DataFrame,
                 unreviewed: str) -> tuple[pl.DataFrame, dict]:
    """Reviewed rows first (a person's verdicts or the automatic reviewer's), then the training seeds,
    then (policy) unreviewed synthetic rows.

    Each id once (the first source wins), rejected rows left out, eval ids never included.
    """
    decided = set(labels["id"])
    parts = [("reviewed", labels.filter(pl.col("status") != "rejected")), ("seed", seeds)]
    if unreviewed == "include":
        parts.append(("unreviewed", pool.filter(~pl.col("id").is_in(list(decided)))))
    banned = set(evals["id"])
    seen: set[str] = set()
    rows, counts = [], {"rejected_by_review": int((labels["status"] == "rejected").sum()), "eval_overlap": 0}
    for name, part in parts:
        counts[name] = 0
        for rec in part.to_dicts():
            if rec["id"] in banned:
                counts["eval_overlap"] += 1
            elif rec["id"] not in seen:
                seen.add(rec["id"])
                rows.append(rec)
                counts[name] += 1
    df = pl.DataFrame(rows, schema=pool.schema) if rows else pool.clear()
    return df, counts


def choose_task(train: dict, table: pl.DataFrame, previous: Path | None) -> tuple[str, str]:
    """The task of this round's student, and why: `train.task`; else a `train.config` only one task's
    recipe accepts (an old workspace's `lora`); else the kind of the promoted model, since a warm start
    needs the same kind; else what the training set's outputs look like (train.task.pick_task)."""
    from train.task import pick_task

    if train["task"] != "auto":
        return train["task"], "train.task"
    fits, _ = config_tasks(train)
    if len(fits) == 1:
        return fits[0], f"train.config {train['config']} is a {fits[0]} config"
    if previous is not None:
        kind = model_task(previous)
        return kind, f"the promoted model {previous} is a {'classifier' if kind == 'classification' else 'generator'}"
    task = pick_task(table)
    return task, f"the training set's outputs are {'labels' if task == 'classification' else 'free text'}"


def model_task(folder: Path) -> str:
    from train import is_classifier

    return "classification" if is_classifier(folder) else "generation"


def plan_training(config: dict, table: Path, previous: Path | None, where: str):
    """(train.task.TrainingPlan for this round, the warm start it can use, notes for the manifest).

    Overrides that only the other task's recipe knows (allowed with task auto) are left out and
    noted; the warm start is the promoted model when it is of the chosen kind."""
    from train.config import defaults
    from train.task import plan_training as plan

    t = config["train"]
    df = read_table(table)
    task, why = choose_task(t, df, previous)
    known = defaults(RECIPES[task])
    overrides = {k: v for k, v in t["overrides"].items() if k in known}
    extra = {}
    if task == "generation":
        # no tracking unless asked, and no activation checkpointing: a small student does not need it
        extra = {k: v for k, v in (("report_to", "none"), ("gradient_checkpointing", False)) if k not in overrides}
    try:
        # plan_training takes overrides as the CLI's key=value text; JSON is YAML, so each value
        # comes back with its type
        p = plan(df, task=task, base=None if t["base"] == "auto" else t["base"],
                 config=AUTO_CONFIG[task] if t["config"] == "auto" else t["config"],
                 overrides=[f"{k}={json.dumps(v)}" for k, v in overrides.items()], **extra)
    except ConfigError as exc:
        raise ConfigError(f"{where}: 'train.config' / 'train.overrides' for the {task} task ({why}): {exc}") from None
    warm = previous if previous is not None and model_task(previous) == task else None
    notes = {"task": task, "why": why, "base": p.base,
             "ignored_overrides": sorted(set(t["overrides"]) - set(overrides)),
             "no_warm_start": None if warm or previous is None else f"{previous} is not a {task} model"}
    return p, warm, notes


def promote_metric(config: dict, task: str) -> str:
    """`promote.metric`, with auto resolved: accuracy for a classifier, eval_loss for a generator."""
    name = config["promote"]["metric"]
    if name != "auto":
        return name
    return "accuracy" if task == "classification" else "eval_loss"


def promote(config: dict, new: dict, previous: dict | None, task: str = "generation") -> tuple[bool, str]:
    """Whether the new adapter replaces the promoted one, and the rule as a sentence."""
    name, tol = promote_metric(config, task), config["promote"]["tolerance"]
    key = METRIC_KEYS[name]
    value = new.get(key)
    if value is None:
        raise ConfigError(f"promote.metric '{name}' is not among the evaluation metrics of this {task} model "
                          f"({', '.join(k for k, v in new.items() if isinstance(v, float))})")
    if previous is None or previous.get(key) is None:
        return True, f"first adapter: promoted ({name} {value:.4f})"
    old = previous[key]
    lower = LOWER_IS_BETTER[name]
    ok = value <= old + tol if lower else value >= old - tol
    sign = "<=" if lower else ">="
    bound = old + tol if lower else old - tol
    rule = f"{name} {value:.4f} {sign} {bound:.4f} (previous {old:.4f}, tolerance {tol})"
    return ok, ("promoted: " if ok else "kept the previous adapter: not ") + rule


def select_batch(model_dir: Path, candidates: pl.DataFrame, config: dict, round_no: int, embedder, progress=None):
    from active_learning import select_from_pool

    s = config["select"]
    k = min(s["k"], candidates.height)
    return select_from_pool(model_dir, candidates, k, strategy=s["strategy"], diversity=s["diversity"],
                            pool_factor=s["pool_factor"], max_new_tokens=s["max_new_tokens"], seed=round_no,
                            round=round_no, embedder=embedder, progress=progress)
