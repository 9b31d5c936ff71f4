"""`seedloop status`: one row per round, read from the manifests, and a plot of the metric per round."""

from __future__ import annotations

from pathlib import Path

from seedloop.loop.cycle import promoted_adapter
from seedloop.loop.manifest import Manifest
from seedloop.loop.steps import METRIC_KEYS, promote_metric
from seedloop.loop.workspace import Workspace, load_config


def round_rows(ws: Workspace) -> list[dict]:
    """What status shows, per round >= 1, straight from the manifests. `metric` is the promotion
    metric of that round (promote.metric, auto resolved by the round's task)."""
    config = load_config(ws)
    rows = []
    for n in ws.round_numbers():
        if n == 0:
            continue
        m = Manifest(ws.round_dir(n), n)
        metrics = m.get("evaluate", "metrics") or {}
        task = m.get("train", "task") or ("generation" if "train" in m.steps else None)   # older rounds: generators
        name = m.get("promote", "metric") or promote_metric(config, task or "generation")
        rows.append({"round": n, "status": m.data["status"], "task": task, "labels": m.get("pull", "labels"),
                     "gained": m.get("pull", "gained"), "train_rows": m.get("training_set", "rows"),
                     "metric_name": name, "metric": metrics.get(METRIC_KEYS[name]), "accuracy": metrics.get("accuracy"),
                     "macro_f1": metrics.get("macro_f1"), "rouge_l": metrics.get("rouge_l"),
                     "promoted": m.get("promote", "promoted"), "selected": m.get("select", "selected"),
                     "pushed": m.get("push", "imported"),
                     "seconds": round(sum(s.get("seconds", 0) for s in m.steps.values()), 1)})
    return rows


def metric_name(rows: list[dict], config: dict) -> str:
    """The promotion metric of the latest round that has one; before any, the configured name."""
    named = [r["metric_name"] for r in rows if r["metric"] is not None]
    return named[-1] if named else config["promote"]["metric"]


def pool_info(ws: Workspace) -> dict:
    m = Manifest(ws.round_dir(0), 0)
    return {"generated": m.get("generate", "records"), "given": m.get("load_pool", "records"),
            "pool": m.get("curate", "kept"), "status": m.data["status"]}


def spend(ws: Workspace) -> tuple[int, float]:
    """(requests, USD) of every teacher request in the workspace's ledger."""
    if not ws.cache.exists():
        return 0, 0.0
    from synth.cache import RequestCache

    store = RequestCache(ws.cache)
    try:
        rows = store.ledger()
    finally:
        store.close()
    return sum(r.requests for r in rows), sum(r.cost for r in rows)


def current_adapter(ws: Workspace) -> Path | None:
    return promoted_adapter(ws, before=10**9)


def plot(rows: list[dict], metric: str, path: Path) -> Path | None:
    """metric and labels per round as a PNG; None when no round has a metric yet."""
    points = [(r["round"], r["metric"], r["labels"] or 0) for r in rows if r["metric"] is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seedloop.core.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="tab:blue")
    ax.set_xlabel("round")
    ax.set_ylabel(metric, color="tab:blue")
    ax.set_xticks([p[0] for p in points])
    twin = ax.twinx()
    twin.bar([p[0] for p in points], [p[2] for p in points], alpha=0.2, color="tab:green")
    twin.set_ylabel("labels (cumulative)", color="tab:green")
    ax.set_title("seedloop: metric on the fixed evaluation split per round")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
