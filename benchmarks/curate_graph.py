"""Semantic dedup's graph step (index build + K-nearest-neighbour search + edges + components):
seconds and peak memory, and where the exact index stops paying.

    .venv/bin/python benchmarks/curate_graph.py crossover [--sizes 2000,5000,10000,20000,50000]
    .venv/bin/python benchmarks/curate_graph.py random --rows 100000 [--compare]   (and --rows 1000000)
    .venv/bin/python benchmarks/curate_graph.py banking77

crossover  exact (flat) vs IVF on random unit vectors of 384 dims, side by side with the ratio:
           semantic_dedup.EXACT_MAX_ROWS is set from this.
random     the graph step as `seedloop curate` runs it (index "auto") on N random unit vectors;
           --compare also times faiss's own IndexIVFFlat.search on the same rows (the usual way).
banking77  the 10,003 Banking77 messages embedded with the packaged model (vectors cached in
           $TMPDIR), exact vs IVF: time, and the IVF graph's recall of the exact graph's edges at 0.95.

Peak memory is the largest resident set size sampled every 10 ms during the step, minus the resident
size just before it (the vectors themselves are not counted).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.semantic_dedup import CURVE, EXACT_MAX_ROWS, components, neighbour_graph  # noqa: E402

DIM = 384


class PeakRSS:
    """Largest RSS seen while the block runs, sampled by a thread."""

    def __enter__(self):
        self._proc = psutil.Process()
        self.base = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def random_unit(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):    # in chunks: float64 temporaries for 1M rows would be 3 GB
        part = rng.standard_normal((min(100_000, n - s), DIM), dtype=np.float32)
        x[s:s + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return x


def graph_step(x: np.ndarray, index: str, threshold: float = 0.95):
    with PeakRSS() as mem:
        t = time.perf_counter()
        graph = neighbour_graph(x, min_similarity=CURVE[0], k=10, index=index)
        groups, _ = components(graph, threshold)
        seconds = time.perf_counter() - t
    return graph, groups, seconds, mem.extra_mb


def crossover(sizes: list[int]) -> None:
    print(f"{'rows':>8} {'flat s':>8} {'ivf s':>8} {'flat/ivf':>9} {'flat MB':>8} {'ivf MB':>8}")
    for n in sizes:
        x = random_unit(n)
        _, _, tf, mf = graph_step(x, "flat")
        _, _, ti, mi = graph_step(x, "ivf")
        print(f"{n:>8} {tf:>8.2f} {ti:>8.2f} {tf / ti:>9.2f} {mf:>8.0f} {mi:>8.0f}", flush=True)
    print(f"\nsemantic_dedup.EXACT_MAX_ROWS = {EXACT_MAX_ROWS} (auto uses flat up to there, IVF above)")


def faiss_ivf_search(x: np.ndarray, k: int = 11, nprobe: int = 4) -> tuple[float, float]:
    """The textbook alternative: faiss.IndexIVFFlat, sqrt(n) lists, searched query by query; nprobe 4
    matches (slightly passes) the recall of seedloop's graph on Banking77 (see `banking77`)."""
    import faiss

    n = len(x)
    nlist = int(np.sqrt(n))
    with PeakRSS() as mem:
        t = time.perf_counter()
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)])
        index.add(x)
        index.nprobe = nprobe
        for s in range(0, n, 8192):
            index.search(x[s:s + 8192], k)
        seconds = time.perf_counter() - t
    return seconds, mem.extra_mb


def random_rows(n: int, compare: bool) -> None:
    x = random_unit(n)
    graph, groups, seconds, mb = graph_step(x, "auto")
    print(f"{n} random unit vectors x {DIM} dims, index {graph.index}, K=10")
    print(f"graph step: {seconds:.1f} s, peak memory +{mb:.0f} MB over the {x.nbytes / 2**20:.0f} MB of vectors")
    print(f"edges >= {CURVE[0]}: {len(graph.src)}; groups at 0.95: {groups} (random vectors have no duplicates)")
    if compare:
        base, base_mb = faiss_ivf_search(x)
        print(f"faiss IndexIVFFlat.search (nprobe 4), same rows: {base:.1f} s, +{base_mb:.0f} MB; "
              f"ratio {base / seconds:.1f}x")


def banking77() -> None:
    from curate.embed import Embedder
    from tests.curate.planted import read_banking77

    texts = [t for t, _ in read_banking77()]
    e = Embedder(cache=Path(tempfile.gettempdir()) / "seedloop_bench_embeddings.sqlite")
    x = e.embed(texts)
    e.close()
    exact, _, tf, mf = graph_step(x, "flat")
    approx, _, ti, mi = graph_step(x, "ivf")
    print(f"Banking77: {len(texts)} messages, {x.shape[1]} dims (encoded now: {e.encoded})")
    print(f"flat: {tf:.2f} s, +{mf:.0f} MB | {approx.index}: {ti:.2f} s, +{mi:.0f} MB | flat/ivf {tf / ti:.2f}")
    for t in (0.8, 0.9, 0.95):
        on = lambda g: {(min(a, b), max(a, b)) for a, b, s in zip(g.src, g.dst, g.sim) if s >= t}  # noqa: E731
        e_edges, a_edges = on(exact), on(approx)
        e_groups, _ = components(exact, t)
        a_groups, _ = components(approx, t)
        print(f"cosine >= {t}: exact graph {len(e_edges)} edges / {e_groups} groups; IVF finds "
              f"{len(e_edges & a_edges)} of them (recall {len(e_edges & a_edges) / max(1, len(e_edges)):.4f}), "
              f"{a_groups} groups")
        for nprobe in (2, 4):
            f_edges = _ivfflat_edges(x, t, nprobe)
            print(f"    faiss IndexIVFFlat nprobe {nprobe}: recall {len(e_edges & f_edges) / max(1, len(e_edges)):.4f}")


def _ivfflat_edges(x: np.ndarray, t: float, nprobe: int, k: int = 11) -> set:
    import faiss

    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, int(np.sqrt(len(x))), faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    index.add(x)
    index.nprobe = nprobe
    d, nn = index.search(x, k)
    return {(min(i, j), max(i, j)) for i in range(len(x)) for s, j in zip(d[i], nn[i]) if j != i and j >= 0 and s >= t}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("crossover", "random", "banking77"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sizes", default="2000,5000,10000,20000,50000")
    parser.add_argument("--compare", action="store_true", help="random: also time faiss's IndexIVFFlat.search")
    args = parser.parse_args()
    if args.what == "crossover":
        crossover([int(s) for s in args.sizes.split(",")])
    elif args.what == "random":
        random_rows(args.rows, args.compare)
    else:
        banking77()


if __name__ == "__main__":
    main()
