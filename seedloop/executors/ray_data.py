"""Embedding and pool scoring as Ray Data `map_batches`, rows back in their original order.

`map_in_order` is the one mechanism: the driver numbers the rows (a `_row` column), cuts the table
into contiguous blocks of `rows_per_task` rows, and a fixed pool of Ray actors (ActorPoolStrategy;
each loads its model once) maps one block per call. Parts come back in any order; a part that a retried
task delivered twice is kept once, every row must come back, and the result is sorted by `_row`.
A worker killed mid-block (its process gone) is restarted and the block runs again.

  ray_embedder      an Embedder: cache look-ups and writes stay on the driver (one SQLite writer), only
                    the texts the cache lacks go to Ray, longest first, as locally
  score_pool_on_ray score_pool on Ray; blocks are whole multiples of --batch-size, so every forward
                    pass holds the same items as locally and gives the same numbers
  select_on_ray     select_from_pool with both of the above (through its scorer hook)

Inputs travel from the driver as in-memory Arrow blocks: the driver holds the table anyway (it
writes the output, and dedup needs all vectors in one place). What is not handled: `disagreement`
draws from one random stream across the whole pool, so it cannot be split without changing its
numbers, and is refused here.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from active_learning.scoring import PoolScores, check_strategy, score_pool
from curate.embed import Embedder
from seedloop.core.errors import ConfigError, SeedloopError
from seedloop.executors import ExecutorError, ray_init

ROW = "_row"
ERROR = "_error"


class _Apply:
    """The callable class Ray Data runs: builds `cls(**args)` once per actor, maps a block, keeps `_row`.

    Our own errors (a model that cannot load, a bad record) come back as data: raised, Ray would wrap
    them and keep only their traceback as text, so the command could not print them as one line."""

    def __init__(self, cls: type, args: dict):
        self.fn, self.error = None, None
        try:
            self.fn = cls(**args)
        except SeedloopError as exc:
            self.error = exc

    def __call__(self, batch: pa.Table) -> pa.Table:
        try:
            if self.error is not None:
                raise self.error
            out = self.fn(batch.drop_columns([ROW]))
        except SeedloopError as exc:
            return pa.table({ERROR: [pickle.dumps(exc)] * batch.num_rows, ROW: batch.column(ROW)})
        table = out if isinstance(out, pa.Table) else pa.table(out)
        if table.num_rows != batch.num_rows:
            raise ExecutorError(f"{type(self.fn).__name__} returned {table.num_rows} rows for {batch.num_rows}")
        return table.append_column(ROW, batch.column(ROW))


def default_workers(cpus: float, gpus: float) -> int:
    """As many workers as the cluster has room for."""
    import ray

    free = ray.cluster_resources()
    room = free.get("GPU", 0) // gpus if gpus else free.get("CPU", 1) // max(cpus, 1e-9)
    return max(1, int(room))


def map_in_order(table: pa.Table, cls: type, *, args: dict, rows_per_task: int, workers: int | None = None,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, max_retries: int = 3,
                 address: str | None = None, on_part: Callable[[pa.Table], None] | None = None) -> pa.Table:
    """`cls(**args)(block)` over contiguous blocks of `table` on Ray actors; the result, row for row."""
    ray = ray_init(address)
    n = table.num_rows
    if n == 0:
        raise ExecutorError("nothing to map: the table has no rows")
    workers = workers or default_workers(cpus_per_worker, gpus_per_worker)
    table = table.append_column(ROW, pa.array(np.arange(n, dtype=np.int64)))
    blocks = [table.slice(i, rows_per_task) for i in range(0, n, rows_per_task)]
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options such as max_restarts this way (removal announced
        # for 2.64) but has no named parameter for them yet; Ray Data's default is to retry forever
        warnings.simplefilter("ignore", DeprecationWarning)
        # one block per call: batch_size equals the block size, so Ray neither merges nor splits blocks
        out = ray.data.from_arrow(blocks).map_batches(
            _Apply, fn_constructor_kwargs={"cls": cls, "args": args}, batch_size=rows_per_task,
            batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=min(workers, len(blocks))),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None, max_restarts=max_retries, max_task_retries=max_retries)
    seen = np.zeros(n, dtype=bool)
    parts = []
    for part in out.iter_batches(batch_size=None, batch_format="pyarrow"):
        if ERROR in part.column_names:
            raise pickle.loads(part.column(ERROR)[0].as_py())
        rows = part.column(ROW).to_numpy()
        fresh = ~seen[rows]
        if not fresh.all():   # a retried task delivered this part again
            part, rows = part.filter(pa.array(fresh)), rows[fresh]
        seen[rows] = True
        parts.append(part)
        if on_part and part.num_rows:
            on_part(part.drop_columns([ROW]))
    if not seen.all():
        raise ExecutorError(f"{int((~seen).sum())} of {n} rows came back from no Ray worker (first: row "
                            f"{int(np.argmin(seen))})")
    return pa.concat_tables(parts).sort_by(ROW).drop_columns([ROW])


# -- embedding ---------------------------------------------------------------------------------


class EmbedTexts:
    """Worker side: the local Embedder (no cache), so batching and normalization are the same code."""

    def __init__(self, model: str | None, batch_size: int | None, device: str | None):
        self.embedder = Embedder(model, batch_size=batch_size, device=device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        vectors = self.embedder.embed(batch.column("text").to_pylist())
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.table({"key": batch.column("key"), "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})


def vectors_of(table: pa.Table) -> np.ndarray:
    col = table.column("vector").combine_chunks()
    # flatten(), not .values: a sliced array's .values starts at its parent's first row
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)


def ray_embedder(model: str | None = None, *, cache: str | Path | None = None, batch_size: int | None = None,
                 device: str | None = None, workers: int | None = None, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, rows_per_task: int = 1024, address: str | None = None) -> Embedder:
    """An Embedder whose missing vectors are computed on Ray (its `encode=` hook); each part is cached
    as it arrives, so a run killed halfway keeps what the cluster computed."""
    # workers resolve the name themselves: the packaged model's folder differs from node to node
    args = {"model": model, "batch_size": batch_size, "device": device}
    options = dict(workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                   rows_per_task=rows_per_task, address=address)

    def encode(keys: list[str], texts: list[str], store) -> dict[str, np.ndarray]:
        out = map_in_order(pa.table({"key": keys, "text": texts}), EmbedTexts, args=args,
                           on_part=lambda part: store(part.column("key").to_pylist(), vectors_of(part)), **options)
        return dict(zip(out.column("key").to_pylist(), vectors_of(out)))

    return Embedder(model, cache=cache, batch_size=batch_size, device=device, encode=encode)


# -- pool scoring ------------------------------------------------------------------------------


class ScoreRecords:
    """Worker side: the model loaded once, score_pool on each block."""

    def __init__(self, model_dir: str, strategy: str, options: dict):
        from train.inference import load_for_inference

        self.model, self.tokenizer = load_for_inference(model_dir)
        self.strategy, self.options = strategy, options

    def __call__(self, batch: pa.Table) -> dict:
        records = [json.loads(r) for r in batch.column("record").to_pylist()]
        s = score_pool(self.model, self.tokenizer, records, self.strategy, **self.options)
        tokens = [s.generated_tokens] + [0] * (len(records) - 1)   # the block's total, counted once
        return {"uncertainty": s.uncertainty.astype(np.float64), "answer": pa.array(s.answers, pa.string()),
                "tokens": tokens}


def score_pool_on_ray(model_dir: str | Path, records: list[dict], strategy: str, *, labels: list[str] | None = None,
                      max_new_tokens: int = 48, batch_size: int = 8, seed: int = 0, batches_per_task: int = 8, workers: int | None = None, cpus_per_worker: float = 1.0,
                      gpus_per_worker: float = 0.0, address: str | None = None,
                      progress: Callable[[int], None] | None = None) -> PoolScores:
    """score_pool's numbers for `records`, computed on Ray workers (see the module docstring)."""
    check_strategy(strategy, labels)
    if strategy == "disagreement":
        raise ConfigError("strategy 'disagreement' samples from one random stream across the whole pool, so "
                          "splitting it over Ray workers would change its scores: use --executor local")
    if strategy == "random":    # no model involved
        return score_pool(None, None, records, strategy, seed=seed)
    done = [0]

    def count(part: pa.Table) -> None:
        done[0] += part.num_rows
        if progress:
            progress(done[0])

    options = dict(labels=labels, max_new_tokens=max_new_tokens, batch_size=batch_size)
    table = pa.table({"record": [json.dumps(r, ensure_ascii=False, default=str) for r in records]})
    out = map_in_order(table, ScoreRecords, args={"model_dir": str(model_dir), "strategy": strategy, "options": options},
                       rows_per_task=batch_size * batches_per_task, workers=workers, cpus_per_worker=cpus_per_worker,
                       gpus_per_worker=gpus_per_worker, address=address, on_part=count)
    return PoolScores(strategy, out.column("uncertainty").to_numpy(), out.column("answer").to_pylist(),
                      sum(out.column("tokens").to_pylist()))


def select_on_ray(model_dir: str | Path, pool: pl.DataFrame, k: int, *, labels: list[str] | None = None,
                  max_new_tokens: int = 48, batch_size: int = 8, seed: int = 0, embedder=None,
                  workers: int | None = None, batches_per_task: int = 8, address: str | None = None, **options):
    """select_from_pool, with scoring and embedding on Ray: the same picks and scores as locally."""
    from active_learning.pool import select_from_pool

    def scorer(records: list[dict], strategy: str, progress) -> PoolScores:
        return score_pool_on_ray(model_dir, records, strategy, labels=labels, max_new_tokens=max_new_tokens,
                                 batch_size=batch_size, seed=seed, batches_per_task=batches_per_task,
                                 workers=workers, address=address, progress=progress)

    return select_from_pool(model_dir, pool, k, labels=labels, max_new_tokens=max_new_tokens, batch_size=batch_size,
                            seed=seed, embedder=embedder or ray_embedder(workers=workers, address=address),
                            scorer=scorer, **options)
