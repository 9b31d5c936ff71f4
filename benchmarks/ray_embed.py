"""Embedding throughput, in-process vs on Ray: N Banking77 rows through seedloop's Embedder (the local
executor) and ray_embedder with 1 and 2 workers, in one run, on a Ray instance this script starts on
this machine (as `--executor ray` does without an address) and stops at the end.

    .venv/bin/python benchmarks/ray_embed.py [--rows 1000] [--large 4000]

Every run starts cold, as a command does: no embedding cache, the model loaded again (locally, in
this process; on Ray, once in each worker), so times include each executor's fixed cost; only the
import of torch and sentence-transformers in this process is done once beforehand (a Ray worker
pays for its own imports, which is part of Ray's fixed cost). Running
two sizes separates the two: time = fixed + rows / steady rate. The machine's cores are split
evenly: 1 worker gets all of them, 2 workers half each. Starting Ray itself is printed apart: a
cluster is started once, not per job.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# a plain ray.init() turns on token auth and writes ~/.ray/auth_token; a benchmark leaves no such trace
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402

from curate.embed import Embedder  # noqa: E402
from tests.curate.planted import read_banking77  # noqa: E402


def timed(make, texts: list[str]) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    vectors = make().embed(texts)
    return time.perf_counter() - t, vectors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--large", type=int, default=4000, help="the larger size, to separate fixed cost and rate")
    args = parser.parse_args()
    texts = list(dict.fromkeys(t for t, _ in read_banking77()))
    if args.large > len(texts) or args.rows >= args.large:
        raise SystemExit(f"need --rows < --large <= {len(texts)} (distinct Banking77 texts)")
    sizes = (args.rows, args.large)
    cpus = os.cpu_count() or 1

    import ray
    from seedloop.executors import ray_init
    from seedloop.executors.ray_data import ray_embedder

    import sentence_transformers  # noqa: F401  (imported once, untimed: see the docstring)

    configs = {"local": lambda: Embedder()}
    for w in (1, 2):
        configs[f"ray, {w} worker{'s' * (w > 1)}"] = (lambda w=w: ray_embedder(workers=w, cpus_per_worker=cpus / w))
    seconds: dict[str, list[float]] = {}
    reference = {}
    start_ray = 0.0
    try:
        for name, make in configs.items():
            if name != "local" and not ray.is_initialized():   # local runs first, with no Ray processes about
                t = time.perf_counter()
                ray_init(None)   # no address: Ray starts here, as with `--executor ray` and no $RAY_ADDRESS
                start_ray = time.perf_counter() - t
            seconds[name] = []
            for n in sizes:
                s, vectors = timed(make, texts[:n])
                seconds[name].append(s)
                if name == "local":
                    reference[n] = vectors
                else:   # same numbers as in-process, or the speed means nothing
                    assert np.allclose(vectors, reference[n], atol=1e-5), f"{name}: vectors differ from local"
                print(f"{name:<16} {n:>6} rows {s:7.1f} s {n / s:7.0f} rows/s", flush=True)
    finally:
        ray.shutdown()

    print(f"\n{cpus} cores; starting Ray on this machine (once per cluster, not per job): {start_ray:.1f} s")
    print(f"{'':<16} {'rows/s @' + str(sizes[0]):>12} {'rows/s @' + str(sizes[1]):>12} {'steady rows/s':>14} "
          f"{'fixed s':>8}")
    fits = {}
    for name, (s1, s2) in seconds.items():
        rate = (sizes[1] - sizes[0]) / (s2 - s1) if s2 > s1 else float("inf")
        fits[name] = (rate, s1 - sizes[0] / rate)
        print(f"{name:<16} {sizes[0] / s1:12.0f} {sizes[1] / s2:12.0f} {rate:14.0f} {fits[name][1]:8.1f}")
    local = seconds["local"]
    for name in list(seconds)[1:]:
        r1, r2 = local[0] / seconds[name][0], local[1] / seconds[name][1]
        print(f"ratio {name} / local rows/s: {r1:.2f} @ {sizes[0]}, {r2:.2f} @ {sizes[1]}, "
              f"steady {fits[name][0] / fits['local'][0]:.2f}")
    for name in list(seconds)[1:]:
        fixed = fits[name][1]
        print(f"fixed cost of a job on Ray ({name}) at {sizes[0]} rows: {fixed:.1f} s of {seconds[name][0]:.1f} s; "
              f"{fixed - fits['local'][1]:.1f} s more than local's (loading the model, {fits['local'][1]:.1f} s)")


if __name__ == "__main__":
    main()
