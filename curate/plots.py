"""The report's figures, as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

COLORS = {"kept": "#2b8a3e", "semantic_duplicate": "#e8590c", "near_duplicate": "#f59f00",
          "low_score": "#7048e8", "not_selected": "#adb5bd"}
MAP_MAX_POINTS = 20_000


def _figure(width: float = 6.4, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")   # no display here, and none wanted
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    return fig, ax


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def similarity_histogram(nearest: np.ndarray, threshold: float) -> bytes:
    fig, ax = _figure()
    values = nearest[~np.isnan(nearest)]
    ax.hist(values, bins=np.linspace(min(0.0, float(values.min(initial=0))), 1.0, 61), color="#4c6ef5")
    ax.axvline(threshold, color="#e03131", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("cosine similarity to the nearest other row")
    ax.set_ylabel("rows")
    ax.legend()
    return _png(fig)


def threshold_curve(curve: Sequence[tuple[float, float]], threshold: float) -> bytes:
    fig, ax = _figure()
    t = [c[0] for c in curve]
    f = [100 * c[1] for c in curve]
    ax.plot(t, f, marker="o", color="#1c7ed6")
    ax.axvline(threshold, color="#e03131", linestyle="--", label=f"chosen {threshold:g}")
    ax.set_xlabel("cosine threshold")
    ax.set_ylabel("% of rows semantic dedup removes")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection on the first two principal components (SVD of the centred data)."""
    if len(x) < 2:
        return np.zeros((len(x), 2))
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def embedding_map(x: np.ndarray, labels: Sequence[str], seed: int = 0) -> bytes:
    """2-D PCA map, one colour per outcome; big sets are sampled to MAP_MAX_POINTS."""
    labels = np.asarray(labels, dtype=object)
    if len(x) > MAP_MAX_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), MAP_MAX_POINTS, replace=False))
        x, labels = x[keep], labels[keep]
    xy = pca_2d(x.astype(np.float64))
    fig, ax = _figure(6.4, 5.0)
    order = ["kept"] + sorted(set(labels) - {"kept"})
    for name in order:
        on = labels == name
        if on.any():
            ax.scatter(xy[on, 0], xy[on, 1], s=6 if name == "kept" else 9, alpha=0.6,
                       color=COLORS.get(name, "#c92a2a"), label=f"{name} ({int(on.sum())})")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.legend(markerscale=2, fontsize=8)
    return _png(fig)


def score_histogram(scores: Sequence[float | None], min_score: float | None) -> bytes:
    fig, ax = _figure()
    values = [s for s in scores if s is not None]
    ax.hist(values, bins=np.arange(0.75, 5.5, 0.5), color="#7048e8")
    if min_score is not None:
        ax.axvline(min_score, color="#e03131", linestyle="--", label=f"--min-score {min_score:g}")
        ax.legend()
    ax.set_xlabel("judge score")
    ax.set_ylabel("rows")
    return _png(fig)
