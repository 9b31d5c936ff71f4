"""Pool-based active-learning simulation on Banking77: how many labels does uncertainty sampling save?

The student is the classifier seedloop trains (`train.train_classifier`, the packaged MiniLM by
default). For each random seed and strategy: start from a small labeled set, train, then each round
pick a batch from the unlabeled pool, reveal its true intents (the oracle), retrain warm-started
from the previous round's classifier on everything labeled so far, and measure accuracy on a
held-out test split that never changes.

Paired by seed: every strategy that starts at random starts from the same labels and the same
round-0 classifier (trained once per seed), so the curves differ only by what was picked. A
strategy is named `[START/]SCORE[+div]`:
  START   random (default) or a cold start on sentence embeddings of the pool: kmeans (the message
          nearest each of `initial` faiss k-means centroids) or kcenter (greedy farthest-first)
  SCORE   random, or an uncertainty of the classifier's label probabilities: margin, label_entropy,
          mnlp (least confidence)
  +div    diversity: k-center greedy over the pool_factor x batch highest-scoring (for random, a
          random shortlist), on the same embeddings; without it, the top `batch`

Defaults: 20 confusable card, transfer, top-up and cash intents (INTENTS), 50 pool and 20 test
messages per intent (a pool of 1,000, a test set of 400), 40 labels to start, 6 rounds of 40, 5 seeds,
the student's shipped settings with `student_settings` on top (`epochs=0` gives the linear probe on
the frozen encoder alone, many times faster). A killed run re-run picks up after its last finished
round (state.json per strategy and seed).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from seedloop.core.atomic import write_text
from seedloop.core.data import BANKING77
from seedloop.core.errors import ConfigError, InputError
from seedloop.core.record import new_record, to_frame

# confusable card, transfer, top-up and cash intents, each with at least 80 distinct messages
INTENTS = ("card_arrival", "card_delivery_estimate", "card_not_working", "lost_or_stolen_card", "compromised_card",
           "declined_card_payment", "card_payment_not_recognised", "pending_card_payment", "pending_transfer",
           "transfer_not_received_by_recipient", "declined_transfer", "failed_transfer", "cancel_transfer",
           "top_up_failed", "pending_top_up", "top_up_reverted", "cash_withdrawal_charge",
           "cash_withdrawal_not_recognised", "wrong_amount_of_cash_received", "pending_cash_withdrawal")
STRATEGIES = ("random", "random+div", "margin", "margin+div", "kmeans/margin+div")
STARTS = ("random", "kmeans", "kcenter")
SCORES = ("random", "margin", "label_entropy", "mnlp")
TEST_SEED = 12345          # the pool/test split is the same for every strategy and seed
INSTRUCTION = "Which banking intent does this customer message express?"


@dataclass
class SimConfig:
    data: str = str(BANKING77)
    intents: tuple[str, ...] = INTENTS
    pool_per_intent: int = 50
    test_per_intent: int = 20
    initial: int = 40
    batch: int = 40
    rounds: int = 6
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    strategies: tuple[str, ...] = STRATEGIES
    pool_factor: float = 3.0
    base: str = "minilm"
    student_settings: dict = field(default_factory=dict)   # train/configs/classifier.yaml keys


@dataclass(frozen=True)
class Strategy:
    name: str
    start: str        # how round 0's labels are chosen
    score: str        # what ranks the pool in later rounds
    diversity: bool


def parse_strategy(name: str) -> Strategy:
    start, _, rest = name.strip().rpartition("/")
    score, plus, extra = rest.partition("+")
    start = start or "random"
    if start not in STARTS or score not in SCORES or (plus and extra != "div"):
        raise ConfigError(f"unknown strategy '{name}': expected [START/]SCORE[+div] with START one of "
                          f"{', '.join(STARTS)} and SCORE one of {', '.join(SCORES)} (e.g. kmeans/margin+div)")
    return Strategy(name.strip(), start, score, bool(plus))


@dataclass
class Point:
    round: int
    labels: int
    accuracy: float
    seconds: float
    labeled_ids: list[str] = field(repr=False, default_factory=list)


def load_split(cfg: SimConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pool, test) record frames; `output` holds the true intent (the oracle's answer)."""
    path = Path(cfg.data)
    if not path.is_file():
        raise InputError("Banking77 train.csv not found (pass --data PATH)", file=str(path))
    rows = pl.read_csv(path)
    for col in ("text", "category"):
        if col not in rows.columns:
            raise InputError(f"missing column '{col}' (expected Banking77's text,category)", file=str(path), field=col)
    unknown = sorted(set(cfg.intents) - set(rows["category"].unique().to_list()))
    if unknown:
        raise ConfigError(f"unknown intent(s): {', '.join(unknown)} (see the category column of {path})")
    pool, test = [], []
    for intent in cfg.intents:
        texts = rows.filter(pl.col("category") == intent)["text"].unique(maintain_order=True).to_list()
        order = np.random.default_rng([TEST_SEED, len(intent)]).permutation(len(texts))
        need = cfg.pool_per_intent + cfg.test_per_intent
        if len(texts) < need:
            raise ConfigError(f"intent '{intent}' has {len(texts)} messages; pool + test per intent needs {need}")
        chosen = [texts[i] for i in order[:need]]
        test += [new_record(INSTRUCTION, t, intent, source="human") for t in chosen[:cfg.test_per_intent]]
        pool += [new_record(INSTRUCTION, t, intent, source="pool") for t in chosen[cfg.test_per_intent:]]
    return to_frame(pool), to_frame(test)


def initial_labels(start: str, size: int, seed: int, embeddings: np.ndarray) -> list[int]:
    """Round 0's pool indices: a seeded random draw, or a cold start that needs no model."""
    rng = np.random.default_rng(seed)
    if start == "random":
        return [int(i) for i in rng.choice(len(embeddings), size=size, replace=False)]
    if start == "kcenter":
        from curate import k_center_greedy

        return k_center_greedy(embeddings, size, first=int(rng.integers(len(embeddings))))
    import faiss

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    kmeans = faiss.Kmeans(x.shape[1], size, niter=25, nredo=5, seed=seed, spherical=True)
    kmeans.train(x)
    taken: list[int] = []
    for centroid in kmeans.centroids:   # the nearest message not taken yet (two centroids can share one)
        taken.append(next(int(i) for i in np.argsort(-(x @ centroid)) if i not in taken))
    return taken


def run_one(cfg: SimConfig, strategy: Strategy, seed: int, pool: pl.DataFrame, test: pl.DataFrame, out: Path,
            embeddings: np.ndarray, *, say: Callable[[str], None] = lambda _: None) -> list[Point]:
    """One learning curve; resumes after the last round recorded in its state.json."""
    from active_learning.batch import select_batch
    from active_learning.scoring import score_classifier
    from train import classifier_text, load_classifier, train_classifier

    work = out / f"{strategy.name.replace('/', '-')}-seed{seed}"
    state_path = work / "state.json"
    points = [Point(**p) for p in json.loads(state_path.read_text())] if state_path.is_file() else []
    ids, records = pool["id"].to_list(), pool.to_dicts()
    labeled = (list(points[-1].labeled_ids) if points else
               [ids[i] for i in initial_labels(strategy.start, cfg.initial, seed, embeddings)])
    truth = np.asarray(test["output"].to_list())
    test_texts = [classifier_text(r) for r in test.to_dicts()]

    def folder(r: int) -> Path:   # round 0 is shared by the strategies of a seed with the same start
        return out / f"{strategy.start}-seed{seed}-round-00" if r == 0 else work / f"round-{r:02d}"

    clf = None
    for r in range(len(points), cfg.rounds + 1):
        start = time.perf_counter()
        if r > 0:   # pick from what is still unlabeled, with the previous round's classifier
            have = set(labeled)
            rest = [i for i, x in enumerate(ids) if x not in have]
            if strategy.score == "random":
                uncertainty = np.random.default_rng([seed, r]).random(len(rest))
            else:
                clf = clf or load_classifier(folder(r - 1))
                uncertainty = score_classifier(clf, [records[i] for i in rest], strategy.score).uncertainty
            picked = select_batch(uncertainty, min(cfg.batch, len(rest)), pool_factor=cfg.pool_factor,
                                  embeddings=embeddings[rest] if strategy.diversity else None)
            labeled = labeled + [ids[rest[i]] for i in picked]
        data = pool.filter(pl.col("id").is_in(labeled))     # the oracle's labels are the pool's outputs
        train_classifier(data, cfg.base, folder(r), labels=list(cfg.intents), resume=True,
                         init_adapter=folder(r - 1) if r else None, **{"seed": seed, **cfg.student_settings})
        clf = load_classifier(folder(r))
        guesses = np.asarray(clf.labels)[clf.predict_proba(test_texts).argmax(axis=1)]
        acc = float(np.mean(guesses == truth))
        points.append(Point(r, len(labeled), acc, round(time.perf_counter() - start, 1), labeled))
        write_text(state_path, json.dumps([asdict(p) for p in points]))
        say(f"{strategy.name} seed {seed} round {r}: {len(labeled)} labels, accuracy {acc:.3f} "
            f"({points[-1].seconds:.0f} s)")
    return points


@dataclass
class Summary:
    curves: dict[str, np.ndarray]        # strategy -> (seeds x rounds) accuracy
    labels: dict[str, np.ndarray]        # strategy -> label counts per round (the same for every seed)
    auc: dict[str, tuple[float, float]]  # strategy -> normalized area under the curve: mean, standard error
    gain: dict[str, tuple[float, float]]  # strategy -> AUC minus random's, paired by seed: mean, standard error
    labels_to_reach: dict[str, float | None]   # labels for the mean curve to reach random's final accuracy
    target: float | None                 # random's final mean accuracy


def normalized_auc(labels: np.ndarray, acc: np.ndarray) -> float:
    """Area under accuracy vs labels (trapezoids), divided by the label range: a mean accuracy in [0, 1]."""
    span = labels[-1] - labels[0]
    if span <= 0:
        return float(acc[-1])
    return float(np.sum((acc[1:] + acc[:-1]) / 2 * np.diff(labels)) / span)


def first_reaching(labels: np.ndarray, acc: np.ndarray, target: float) -> float | None:
    """Labels at which the curve first reaches `target`, linearly interpolated; None if it never does."""
    for i, a in enumerate(acc):
        if a >= target - 1e-9:
            if i == 0:
                return float(labels[0])
            a0, l0 = acc[i - 1], labels[i - 1]
            return float(l0 + (target - a0) / (a - a0) * (labels[i] - l0))
    return None


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def summarize(results: dict[str, list[list[Point]]]) -> Summary:
    curves = {s: np.array([[p.accuracy for p in run] for run in runs]) for s, runs in results.items()}
    labels = {s: np.array([p.labels for p in runs[0]], dtype=float) for s, runs in results.items()}
    per_seed = {s: np.array([normalized_auc(labels[s], c) for c in curves[s]]) for s in results}
    auc = {s: mean_se(v) for s, v in per_seed.items()}
    gain = {s: mean_se(v - per_seed["random"]) for s, v in per_seed.items()} if "random" in per_seed else {}
    target = float(curves["random"].mean(axis=0)[-1]) if "random" in curves else None
    reach = {s: (first_reaching(labels[s], curves[s].mean(axis=0), target) if target is not None else None)
             for s in results}
    return Summary(curves, labels, auc, gain, reach, target)


def band(curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds and the half-width of its 95% confidence interval (Student's t)."""
    from scipy.stats import t

    n = curve.shape[0]
    if n < 2:
        return curve.mean(axis=0), np.zeros(curve.shape[1])
    return curve.mean(axis=0), t.ppf(0.975, n - 1) * curve.std(axis=0, ddof=1) / math.sqrt(n)


def plot(summary: Summary, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for s, c in summary.curves.items():
        mean, half = band(c)
        ax.plot(summary.labels[s], mean, marker="o", markersize=3, label=f"{s} (AUC {summary.auc[s][0]:.3f})")
        ax.fill_between(summary.labels[s], mean - half, mean + half, alpha=0.12)
    if summary.target is not None:
        ax.axhline(summary.target, color="grey", linestyle=":", linewidth=1, label="random's final accuracy")
    ax.set_xlabel("labeled examples")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def check(cfg: SimConfig) -> list[Strategy]:
    strategies = [parse_strategy(s) for s in cfg.strategies]
    if cfg.initial < 1 or cfg.batch < 1 or cfg.rounds < 1:
        raise ConfigError("--initial, --batch and --rounds must be at least 1")
    if cfg.initial + cfg.batch * cfg.rounds > cfg.pool_per_intent * len(cfg.intents):
        raise ConfigError(f"{cfg.initial} + {cfg.rounds} rounds x {cfg.batch} labels is more than the pool "
                          f"({cfg.pool_per_intent} x {len(cfg.intents)} intents)")
    from train import resolve_config

    resolve_config(None, recipe="classifier", **cfg.student_settings)   # names a misspelt setting now, not in round 0
    return strategies


def simulate(cfg: SimConfig, out: Path, *, say: Callable[[str], None] = print) -> Summary:
    """Run every strategy x seed into `out`, then write curves.png, curves.csv and summary.json."""
    from curate import Embedder
    from train import classifier_text

    strategies = check(cfg)
    pool, test = load_split(cfg)
    out.mkdir(parents=True, exist_ok=True)
    embeddings = Embedder(cache=out / "embeddings.sqlite").embed([classifier_text(r) for r in pool.to_dicts()])
    say(f"pool {pool.height}, test {test.height}, {len(cfg.intents)} intents (chance {1 / len(cfg.intents):.3f})")
    started = time.perf_counter()
    results: dict[str, list[list[Point]]] = {}
    for seed in cfg.seeds:             # seeds outermost: a stopped run has every strategy for its first seeds
        for s in strategies:
            results.setdefault(s.name, []).append(run_one(cfg, s, seed, pool, test, out, embeddings, say=say))
    summary = summarize(results)
    rows = [{"strategy": s, "seed": seed, "round": p.round, "labels": p.labels, "accuracy": p.accuracy,
             "seconds": p.seconds} for s, runs in results.items() for seed, run in zip(cfg.seeds, runs) for p in run]
    write_text(out / "curves.csv", pl.DataFrame(rows).write_csv())
    plot(summary, out / "curves.png", f"Banking77, {len(cfg.intents)} intents, pool {pool.height}, "
                                      f"{len(cfg.seeds)} seeds (mean, 95% CI)")
    report = {
        "config": {**asdict(cfg), "data": str(cfg.data)},
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "auc": {s: {"mean": m, "se": se} for s, (m, se) in summary.auc.items()},
        "auc_gain_over_random": {s: {"mean": m, "se": se} for s, (m, se) in summary.gain.items()},
        "final_accuracy": {s: float(c.mean(axis=0)[-1]) for s, c in summary.curves.items()},
        "random_final_accuracy": summary.target,
        "labels_to_reach_random_final": summary.labels_to_reach,
        "fraction_of_random_labels": {s: fraction(summary, s) for s in summary.labels_to_reach},
    }
    write_text(out / "summary.json", json.dumps(report, indent=2))
    return summary


def fraction(summary: Summary, strategy: str) -> float | None:
    v = summary.labels_to_reach.get(strategy)
    last = summary.labels.get("random")
    return None if v is None or last is None or math.isclose(last[-1], 0) else v / last[-1]
