"""`seedloop init`: a workspace folder with its config, the seed file, and the fixed evaluation split.

The split is by a hash of each seed's id (and `eval.seed`), so it does not depend on the file's row
order; or, with `--eval FILE`, it is that file (every seed then trains). `eval.parquet` is never
trained on: round 0 decontaminates the pool against it, and the training set of every round leaves
out its ids. `--pool FILE` copies a pool in, which round 0 curates instead of asking the teacher.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl

from seedloop.core.errors import ConfigError, InputError, require_file
from seedloop.core.tables import write_table
from seedloop.loop.workspace import CONFIG_NAME, TEMPLATE, Workspace, parse_config

# what `seedloop init` writes into the template when not told otherwise
SETTINGS = {"teacher": "local", "n": 60, "project": None, "auto": False, "task": "auto", "student": "auto",
            "train_config": "auto", "overrides": None, "unreviewed": "include", "k": 12}


def init_workspace(folder: Path, seeds: Path, *, pool: Path | None = None, evals: Path | None = None,
                   force: bool = False, **settings) -> Workspace:
    """Create the workspace at `folder` (a missing file or an existing workspace is an error).
    `settings`: the keys of SETTINGS."""
    from synth.seeds import load_seeds

    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise TypeError(f"init_workspace() got unknown settings: {', '.join(unknown)}")   # a caller's bug
    files = {"seeds": require_file(seeds, "seed file"), "given_pool": pool and require_file(pool, "pool file"),
             "given_eval": evals and require_file(evals, "evaluation file")}
    ws = Workspace(Path(folder))
    if ws.config_path.exists() and not force:
        raise ConfigError(f"{ws.root} is already a workspace ({CONFIG_NAME} exists); use another folder or --force")
    df = load_seeds(files["seeds"])   # a bad row fails here, before anything is written
    held_out = _eval_rows(files["given_eval"]) if evals else None
    if pool:
        load_seeds(files["given_pool"])
    names = {key: key + path.suffix.lower() for key, path in files.items() if path}
    text = _config_text({**SETTINGS, **settings}, names)
    # checked before anything is written: a bad --train-set or --k fails here, naming the key
    config = parse_config(text, str(ws.config_path))
    ws.root.mkdir(parents=True, exist_ok=True)
    for key, name in names.items():
        if files[key].resolve() != (ws.root / name).resolve():
            shutil.copyfile(files[key], ws.root / name)
    ws.config_path.write_text(text, encoding="utf-8")
    if held_out is None:
        write_eval_split(ws, df, config)
    else:
        write_given_eval(ws, df, held_out)
    return ws


def _config_text(s: dict, names: dict[str, str]) -> str:
    text = TEMPLATE.format(teacher=s["teacher"], n=s["n"], project=json.dumps(s["project"]) if s["project"] else "null",
                           auto=str(s["auto"]).lower(), task=s["task"], config=s["train_config"],
                           base=json.dumps(str(s["student"])), k=s["k"], overrides=json.dumps(s["overrides"] or {}),
                           unreviewed=s["unreviewed"], pool=json.dumps(names.get("given_pool")),
                           eval_file=json.dumps(names.get("given_eval")))
    return text.replace("seeds: seeds.jsonl", f"seeds: {names['seeds']}")


def _eval_rows(path: Path) -> pl.DataFrame:
    """The rows of an evaluation file; each needs its reference answer."""
    from synth.seeds import load_seeds

    df = load_seeds(path)
    missing = df.filter(pl.col("output").is_null()).height
    if missing:
        raise InputError(f"{missing} of {df.height} rows have no output: an evaluation row needs its reference "
                         "answer", file=str(path), field="output")
    return df


def write_given_eval(ws: Workspace, seeds: pl.DataFrame, evals: pl.DataFrame) -> tuple[int, int]:
    """eval.parquet from the given file, and every seed not in it as a training seed."""
    train = seeds.filter(~pl.col("id").is_in(evals["id"].to_list()))
    if train.height == 0:
        raise InputError(f"every one of the {seeds.height} seeds is in the evaluation file: nothing left to train on",
                         field="eval.file")
    write_table(evals, ws.eval_path)
    write_table(train.with_columns(pl.lit(0, dtype=pl.Int32).alias("round")), ws.root / "seeds_train.parquet")
    return train.height, evals.height


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
