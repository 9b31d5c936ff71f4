"""Embedding throughput: rows/s through seedloop's Embedder (hashing, cache look-up, length sort,
chunked encode, SQLite writes) vs SentenceTransformer.encode called directly on the same rows,
in one run, with the same model, batch size and normalization.

    .venv/bin/python benchmarks/curate_embed.py [--rows 3000] [--rounds 2]

Direct calls are timed at sentence-transformers' default batch size (32) and at --batch-size (the
fastest fixed size measured here); seedloop picks its batch size from a token budget. Rounds
alternate on a cold cache each time, and the best of each is reported, because this machine is
shared and timings are noisy. Goal (issue 3): seedloop / direct >= 0.9, against the faster direct
call. Also printed: a warm re-run (every vector from the cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.embed import Embedder  # noqa: E402
from tests.curate.planted import read_banking77  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    texts = [t for t, _ in read_banking77()][: args.rows]
    tmp = Path(tempfile.mkdtemp(prefix="curate_embed_"))
    model = Embedder().model                                 # loaded once, shared by both sides
    model.encode(texts[:256], batch_size=args.batch_size)   # warm-up: first calls allocate
    direct = {32: [], args.batch_size: []}
    ours, warm = [], []
    for r in range(args.rounds):
        for bs, rates in direct.items():
            t = time.perf_counter()
            model.encode(texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
            rates.append(len(texts) / (time.perf_counter() - t))
        e = Embedder(cache=tmp / f"round{r}.sqlite")
        e._model = model
        t = time.perf_counter()
        e.embed(texts)
        ours.append(len(texts) / (time.perf_counter() - t))
        assert e.encoded == len(set(texts))
        t = time.perf_counter()
        e.embed(texts)
        warm.append(len(texts) / (time.perf_counter() - t))
        e.close()
        print(f"round {r + 1}: " + ", ".join(f"direct@{bs} {v[-1]:.0f}" for bs, v in direct.items())
              + f", seedloop {ours[-1]:.0f} rows/s", flush=True)
    import torch

    best = max(max(v) for v in direct.values())
    print(f"\n{len(texts)} Banking77 rows, torch threads {torch.get_num_threads()}")
    for bs, v in direct.items():
        print(f"SentenceTransformer.encode, batch {bs:<4}: {max(v):8.0f} rows/s")
    print(f"seedloop Embedder, cold cache      : {max(ours):8.0f} rows/s")
    print(f"ratio seedloop / best direct       : {max(ours) / best:8.2f}   (goal >= 0.9)")
    print(f"seedloop Embedder, warm cache      : {max(warm):8.0f} rows/s (no encoding)")


if __name__ == "__main__":
    main()
