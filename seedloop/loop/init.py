"""`seedloop init`: a workspace folder with its config, the seed file, and the fixed evaluation split.

The split is by a hash of each seed's id (and `eval.seed`), so it does not depend on the file's row
order. `eval.parquet` is never trained on: round 0 decontaminates the synthetic pool against it, and
the training set of every round leaves out its ids.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl

from seedloop.errors import ConfigError, InputError, require_file
from seedloop.tables import write_table
from seedloop.workspace import CONFIG_NAME, TEMPLATE, Workspace, parse_config


def init_workspace(folder: Path, seeds: Path, *, teacher: str = "local", n: int = 60, project: str | None = None,
                   auto: bool = False, train_config: str = "lora", overrides: dict | None = None,
                   student: str = "local", k: int = 12, force: bool = False) -> Workspace:
    """Create the workspace at `folder` (a missing seed file or an existing workspace is an error)."""
    from synth.seeds import load_seeds

    seeds = require_file(seeds, "seed file")
    ws = Workspace(Path(folder))
    if ws.config_path.exists() and not force:
        raise ConfigError(f"{ws.root} is already a workspace ({CONFIG_NAME} exists); use another folder or --force")
    df = load_seeds(seeds)   # a bad row fails here, before anything is written
    seed_name = "seeds" + seeds.suffix.lower()
    text = TEMPLATE.format(teacher=teacher, n=n, project=json.dumps(project) if project else "null",
                           auto=str(auto).lower(), config=train_config, base=json.dumps(str(student)), k=k, overrides=json.dumps(overrides or {}))
    text = text.replace("seeds: seeds.jsonl", f"seeds: {seed_name}")
    # checked before anything is written: a bad --train-set or --k fails here, naming the key
    config = parse_config(text, str(ws.config_path))
    ws.root.mkdir(parents=True, exist_ok=True)
    if seeds.resolve() != (ws.root / seed_name).resolve():
        shutil.copyfile(seeds, ws.root / seed_name)
    ws.config_path.write_text(text, encoding="utf-8")
    write_eval_split(ws, df, config)
    return ws


def write_eval_split(ws: Workspace, seeds: pl.DataFrame, config: dict) -> tuple[int, int]:
    """Write eval.parquet (the held-out seeds) and seeds_train.parquet; returns (train, eval) counts."""
    fraction, salt = config["eval"]["fraction"], config["eval"]["seed"]
    ranks = [int(hashlib.sha256(f"{salt}:{i}".encode()).hexdigest()[:12], 16) for i in seeds["id"]]
    order = sorted(range(seeds.height), key=lambda i: ranks[i])
    n_eval = max(1, round(fraction * seeds.height)) if seeds.height > 1 else 0
    held = set(order[:n_eval])
    mask = pl.Series([i in held for i in range(seeds.height)])
    evals, train = seeds.filter(mask), seeds.filter(~mask)
    if train.height == 0:
        raise InputError(f"only {seeds.height} seed(s): nothing left to train on after the evaluation split",
                         field="eval.fraction")
    write_table(evals, ws.eval_path)
    write_table(train.with_columns(pl.lit(0, dtype=pl.Int32).alias("round")), ws.root / "seeds_train.parquet")
    return train.height, evals.height
