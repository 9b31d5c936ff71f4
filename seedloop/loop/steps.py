"""The steps of a round. Each reads tables of the workspace and returns the table it produces.

Round 0 builds the pool: `generate` (teacher expands the training seeds) and `curate` (dedup and
decontamination against eval.parquet). Later rounds: `pull` -> `training_set` -> `train` ->
`evaluate` -> `promote` -> `select` -> `push` (and the automatic reviewer when configured).
Orchestration, skipping and the manifest live in cycle.py; these functions only compute.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from seedloop.errors import ConfigError
from seedloop.record import conform, empty_frame
from seedloop.tables import read_table
from seedloop.workspace import Workspace

LOWER_IS_BETTER = {"eval_loss": True, "accuracy": False, "rouge_l": False}
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


def curate(ws: Workspace, config: dict, generated: pl.DataFrame, evals: pl.DataFrame):
    """Dedup and quality rules, and decontamination against the fixed evaluation split."""
    from curate.embed import Embedder
    from curate.pipeline import Against
    from curate.pipeline import curate as run_curate
    from curate.rows import row_text

    if config["curate"]["judge"]:
        raise ConfigError(f"{ws.config_path}: 'curate.judge' is not supported by `seedloop cycle` yet; "
                          "set it to null (or curate with `seedloop curate --judge` outside the loop)")
    against = Against([row_text(r["instruction"], r["input"], r["output"], "prompt") for r in evals.to_dicts()],
                      evals["id"].to_list(), [f"eval.parquet row {i + 1}" for i in range(evals.height)])
    embedder = Embedder(None, cache=ws.embeddings)
    try:
        return run_curate(generated, embedder, threshold=config["curate"]["threshold"], against=against,
                          where="generated.parquet")
    finally:
        embedder.close()


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
            df, _ = pull_records(conn, project)
        except UnknownProject:
            df = empty_frame()   # nothing pushed yet: the first round
    return conform(df.filter(pl.col("status") != "pending"), where="pulled labels")


def training_set(labels: pl.DataFrame, seeds: pl.DataFrame, pool: pl.DataFrame, evals: pl.DataFrame,
                 unreviewed: str) -> tuple[pl.DataFrame, dict]:
    """Human-verified rows first, then the training seeds, then (policy) unreviewed synthetic rows.

    Each id once (the first source wins), rejected rows left out, eval ids never included.
    """
    decided = set(labels["id"])
    parts = [("human", labels.filter(pl.col("status") != "rejected")), ("seed", seeds)]
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


def train_settings(config: dict) -> dict:
    """The trainer's settings: the named config, then `train.overrides`; no tracking unless asked."""
    from train.config import resolve

    overrides = dict(config["train"]["overrides"])
    overrides.setdefault("report_to", "none")
    # a small student needs no activation checkpointing, and the plain-LoRA path with it fails on
    # transformers 5.23 (activation_checkpointing_enable takes no kwargs; train/recipe.py _setup_model)
    overrides.setdefault("gradient_checkpointing", False)
    return resolve(config["train"]["config"], [], **overrides)


def promote(config: dict, new: dict, previous: dict | None) -> tuple[bool, str]:
    """Whether the new adapter replaces the promoted one, and the rule as a sentence."""
    name, tol = config["promote"]["metric"], config["promote"]["tolerance"]
    key = METRIC_KEYS[name]
    value = new.get(key)
    if value is None:
        raise ConfigError(f"promote.metric '{name}' is not among the evaluation metrics "
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


def select(model_dir: Path, candidates: pl.DataFrame, config: dict, round_no: int, embedder, progress=None):
    from active_learning import select_from_pool

    s = config["select"]
    k = min(s["k"], candidates.height)
    return select_from_pool(model_dir, candidates, k, strategy=s["strategy"], diversity=s["diversity"],
                            pool_factor=s["pool_factor"], max_new_tokens=s["max_new_tokens"], seed=round_no,
                            round=round_no, embedder=embedder, progress=progress)
