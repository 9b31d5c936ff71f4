"""Predictions of a trained student over a record table, resumable by record id.

A classifier gives each row its most likely label and that label's probability; a generator its
greedy answer and the mean log-probability of the answer's tokens (null for an empty answer).

Rows are predicted in chunks, and each finished chunk is written (atomically) to a folder beside
the output, `.OUT.parts/`. A killed run re-run with the same model and settings predicts only the
ids no chunk holds yet; the output is written once, whole, at the end, and the folder removed. A run
with another model or other settings starts over (the folder records what it was made with).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl

from seedloop.core.atomic import atomic_path, write_text
from seedloop.core.tables import read_table, table_format, write_table

CHUNK_ROWS = 256
CLASSIFIER_COLUMNS = {"id": pl.Utf8, "label": pl.Utf8, "probability": pl.Float64}
GENERATOR_COLUMNS = {"id": pl.Utf8, "text": pl.Utf8, "mean_logprob": pl.Float64, "tokens": pl.Int64}


def predict(model_dir: str | Path, data: str | Path | pl.DataFrame, out: str | Path, *, batch_size: int = 16,
            max_new_tokens: int = 64, chunk_rows: int = CHUNK_ROWS, progress=None) -> dict:
    """Write `out` (.parquet or .jsonl): every row's id, instruction and input, then the prediction
    columns. Returns {"rows", "predicted", "resumed", "task"}: `resumed` rows came from a killed run."""
    from train.classifier_model import is_classifier

    out = Path(out)
    table_format(out)                                   # a bad suffix fails before any work
    df = data if isinstance(data, pl.DataFrame) else read_table(data)
    classifier = is_classifier(model_dir)
    parts = out.with_name(f".{out.name}.parts")
    settings = {"model": _fingerprint(model_dir), "batch_size": batch_size,
                "max_new_tokens": None if classifier else max_new_tokens}
    start = _open_parts(parts, settings)
    schema = CLASSIFIER_COLUMNS if classifier else GENERATOR_COLUMNS
    done = _read_parts(parts, schema)
    todo = df.filter(~pl.col("id").is_in(done["id"].to_list())).unique("id", keep="first", maintain_order=True)
    if todo.height:
        records, predict_chunk = (_classifier if classifier else _generator)(model_dir, todo.to_dicts(),
                                                                             batch_size, max_new_tokens)
        for n, at in enumerate(range(0, len(records), chunk_rows), start):
            chunk = records[at:at + chunk_rows]
            with atomic_path(parts / f"{n:06d}.parquet") as tmp:
                pl.DataFrame(predict_chunk(chunk), schema=schema).write_parquet(tmp)
            if progress:
                progress(done.height + at + len(chunk), done.height + todo.height)
    table = df.select("id", "instruction", "input").join(_read_parts(parts, schema), on="id", how="left",
                                                         maintain_order="left")
    write_table(table, out)
    shutil.rmtree(parts, ignore_errors=True)
    return {"rows": df.height, "predicted": todo.height, "resumed": done.height,
            "task": "classification" if classifier else "generation"}


def _fingerprint(model_dir: str | Path) -> str:
    """What identifies a model folder's weights: its path and every file's name, size and mtime."""
    folder = Path(model_dir)
    if not folder.is_dir():
        return str(model_dir)
    files = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(json.dumps([str(folder.resolve()), files]).encode()).hexdigest()


def _open_parts(parts: Path, settings: dict) -> int:
    """How many chunks `parts` holds from a run with the same settings (a stale folder is emptied)."""
    meta = parts / "settings.json"
    if parts.is_dir() and (not meta.is_file() or json.loads(meta.read_text()) != settings):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not meta.is_file():
        write_text(meta, json.dumps(settings))
    return len(list(parts.glob("*.parquet")))


def _read_parts(parts: Path, schema: dict) -> pl.DataFrame:
    found = [pl.read_parquet(p) for p in sorted(parts.glob("*.parquet"))]
    return pl.concat(found) if found else pl.DataFrame(schema=schema)


def _classifier(model_dir, records: list[dict], batch_size: int, _max_new_tokens: int):
    """(records, predict_chunk): the label and its probability for each record."""
    from train.classifier import classifier_text
    from train.classifier_model import load_classifier

    clf = load_classifier(model_dir)

    def predict_chunk(chunk: list[dict]) -> list[dict]:
        probs = clf.predict_proba([classifier_text(r) for r in chunk], batch_size=batch_size)
        return [{"id": r["id"], "label": clf.labels[i], "probability": float(p[i])}
                for r, i, p in zip(chunk, probs.argmax(axis=1), probs)]
    return records, predict_chunk


def _generator(model_dir, records: list[dict], batch_size: int, max_new_tokens: int):
    """(records sorted by prompt length, so batches carry little padding; predict_chunk): greedy answers."""
    from train.chat import render_prompt
    from train.inference import answer, load_for_inference

    model, tokenizer = load_for_inference(model_dir)

    def predict_chunk(chunk: list[dict]) -> list[dict]:
        answers = answer(model, tokenizer, chunk, max_new_tokens=max_new_tokens, batch_size=batch_size)
        return [{"id": r["id"], "text": a.text, "tokens": len(a.token_logprobs),
                 "mean_logprob": sum(a.token_logprobs) / len(a.token_logprobs) if a.token_logprobs else None}
                for r, a in zip(chunk, answers)]
    return sorted(records, key=lambda r: len(render_prompt(r, tokenizer))), predict_chunk
