"""Pool-based active-learning simulation on Banking77: how many labels does uncertainty sampling save?

For each strategy and each random seed: start from a small random labeled set drawn from the pool,
train the student (LoRA on SmolLM2-135M-Instruct), then each round pick a batch from the unlabeled
pool, reveal its true intents (the oracle), retrain warm-started from the previous round's adapter
on everything labeled so far, and measure accuracy on a held-out test split that never changes.

Accuracy is the argmax over the label set of each option's sequence log-probability (the same
scorer the margin strategy uses), so a prediction is always a valid intent.

Defaults (sized for about 30 minutes on 2 idle CPU cores): 8 intents (INTENTS), 30 pool and 8 test
messages per intent, 16 labels to start, 3 rounds of 16, 2 strategies (random; margin + k-center
diversity) x 3 seeds; 16 optimizer steps of 8 examples for round 0 (shared by the strategies of a
seed), 6 for each warm-started round; LoRA on the top 8 layers.
A killed run re-run picks up after its last finished round (state.json per strategy and seed).
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

from seedloop.atomic import write_text
from seedloop.data import BANKING77
from seedloop.errors import ConfigError, InputError
from seedloop.record import new_record, to_frame

# confusable card and transfer intents, plus a few easy ones: a task where the choice of labels matters
INTENTS = ("card_arrival", "card_linking", "exchange_rate", "lost_or_stolen_card", "pin_blocked",
           "cancel_transfer", "declined_card_payment", "top_up_failed")
TEST_SEED = 12345          # the test split is the same for every strategy and seed


@dataclass
class SimConfig:
    data: str = str(BANKING77)
    intents: tuple[str, ...] = INTENTS
    pool_per_intent: int = 30
    test_per_intent: int = 8
    initial: int = 16
    batch: int = 16
    rounds: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = ("random", "margin")
    diversity: bool = True
    pool_factor: float = 3.0
    base: str = "local"
    first_steps: int = 16      # optimizer steps of the first round (from the untrained base)
    steps: int = 6             # optimizer steps of each later round (warm-started)
    train_batch: int = 8
    lr: float = 1e-3
    lora_layers: int = 8       # LoRA on the top N transformer layers only: backward stops there (see top_layers)


@dataclass
class Point:
    round: int
    labels: int
    accuracy: float
    seconds: float
    labeled_ids: list[str] = field(repr=False, default_factory=list)


SYSTEM = "Name the banking intent."


def as_record(text: str, intent: str, source: str) -> dict:
    """A message as a chat record with a short system turn: SmolLM2's default system prompt would make
    the prompt twice as long, and training time on a CPU grows with it. The label set is not listed:
    accuracy and margin rank the options anyway."""
    return new_record(text, "", intent, source=source, status="accepted",
                      messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}])


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
        test += [as_record(t, intent, "human") for t in chosen[:cfg.test_per_intent]]
        pool += [as_record(t, intent, "pool") for t in chosen[cfg.test_per_intent:]]
    return to_frame(pool), to_frame(test)


def top_layers(base: str, n: int) -> str:
    """peft target_modules (a regex) for every linear layer of the top `n` transformer layers.

    The base is frozen and its inputs need no gradient, so backpropagation stops at the lowest layer
    with an adapter: on SmolLM2's 30 layers, adapting the top 8 makes a step about twice as fast
    as adapting all of them, which is what lets the simulation fit in its CPU budget."""
    from transformers import AutoConfig

    from train.models import resolve_base

    layers = AutoConfig.from_pretrained(resolve_base(base)).num_hidden_layers
    chosen = "|".join(str(i) for i in range(max(0, layers - n), layers))
    return rf".*\.layers\.({chosen})\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def accuracy(model, tokenizer, test: pl.DataFrame, intents) -> float:
    from train.inference import score_options

    scores = score_options(model, tokenizer, test.to_dicts(), list(intents), batch_size=16)
    predicted = np.asarray(intents)[scores.argmax(axis=1)]
    return float(np.mean(predicted == np.asarray(test["output"].to_list())))


def run_one(cfg: SimConfig, strategy: str, seed: int, pool: pl.DataFrame, test: pl.DataFrame, work: Path, *,
            embedder=None, say: Callable[[str], None] = lambda _: None) -> list[Point]:
    """One learning curve; resumes after the last round recorded in work/state.json."""
    from active_learning.select import select_from_pool
    from train.inference import load_for_inference
    from train.recipe import train

    state_path = work / "state.json"
    points = [Point(**p) for p in json.loads(state_path.read_text())] if state_path.is_file() else []
    ids = pool["id"].to_list()
    if points:
        labeled = list(points[-1].labeled_ids)
    else:
        labeled = [ids[i] for i in np.random.default_rng(seed).choice(len(ids), size=cfg.initial, replace=False)]
    loaded = None
    for r in range(len(points), cfg.rounds + 1):
        start = time.perf_counter()
        if r > 0:   # pick from what is still unlabeled, with the previous round's model
            unlabeled = pool.filter(~pl.col("id").is_in(labeled))
            k = min(cfg.batch, unlabeled.height)
            if strategy == "random":
                picked = np.random.default_rng([seed, r]).choice(unlabeled.height, size=k, replace=False)
                new = unlabeled["id"].gather(picked).to_list()
            else:
                loaded = loaded or load_for_inference(_round_dir(work, r - 1), dtype="fp32")
                chosen = select_from_pool(None, unlabeled, k, strategy=strategy, labels=list(cfg.intents),
                                          diversity=cfg.diversity, pool_factor=cfg.pool_factor, seed=seed,
                                          embedder=embedder, loaded=loaded, batch_size=16)
                new = chosen.picks["id"].to_list()
            labeled = labeled + new
        data = pool.filter(pl.col("id").is_in(labeled))    # the oracle's labels are the pool's outputs
        out = _round_dir(work, r)
        train(data, cfg.base, out, init_adapter=_round_dir(work, r - 1) if r else None, resume=True,
              four_bit=False, max_steps=cfg.first_steps if r == 0 else cfg.steps, batch_size=cfg.train_batch,
              lr=cfg.lr, max_length=160, eval_fraction=0.0, eval_every=10_000, save_every=10_000,
              early_stopping_patience=0, gradient_checkpointing=False, report_to="none", seed=seed + r,
              target_modules=top_layers(cfg.base, cfg.lora_layers))
        loaded = load_for_inference(out, dtype="fp32")    # on CPU, fp32 scores faster than bf16 here
        acc = accuracy(*loaded, test, cfg.intents)
        points.append(Point(r, len(labeled), acc, round(time.perf_counter() - start, 1), labeled))
        write_text(state_path, json.dumps([asdict(p) for p in points]))
        say(f"{strategy} seed {seed} round {r}: {len(labeled)} labels, accuracy {acc:.3f} "
            f"({points[-1].seconds:.0f} s)")
    return points


def _round_dir(work: Path, r: int) -> Path:
    """Round 0 (the same random labels for every strategy of a seed) is trained once per seed and
    shared: every strategy starts from the same model, so the curves differ only by what was picked."""
    return work.parent / f"seed{work.name.rsplit('seed', 1)[1]}-round-00" if r == 0 else work / f"round-{r:02d}"


@dataclass
class Summary:
    curves: dict[str, np.ndarray]        # strategy -> (seeds x rounds) accuracy
    labels: dict[str, np.ndarray]        # strategy -> label counts per round (the same for every seed)
    auc: dict[str, tuple[float, float]]  # strategy -> normalized area under the curve, mean and std over seeds
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


def summarize(results: dict[str, list[list[Point]]]) -> Summary:
    curves = {s: np.array([[p.accuracy for p in run] for run in runs]) for s, runs in results.items()}
    labels = {s: np.array([p.labels for p in runs[0]], dtype=float) for s, runs in results.items()}
    auc = {}
    for s in results:
        per_seed = [normalized_auc(labels[s], c) for c in curves[s]]
        auc[s] = (float(np.mean(per_seed)), float(np.std(per_seed)))
    target = float(curves["random"].mean(axis=0)[-1]) if "random" in curves else None
    reach = {s: (first_reaching(labels[s], curves[s].mean(axis=0), target) if target is not None else None)
             for s in results}
    return Summary(curves, labels, auc, reach, target)


def plot(summary: Summary, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s, c in summary.curves.items():
        mean, std = c.mean(axis=0), c.std(axis=0)
        ax.plot(summary.labels[s], mean, marker="o", label=f"{s} (AUC {summary.auc[s][0]:.3f})")
        ax.fill_between(summary.labels[s], mean - std, mean + std, alpha=0.15)
    if summary.target is not None:
        ax.axhline(summary.target, color="grey", linestyle=":", linewidth=1, label="random's final accuracy")
    ax.set_xlabel("labeled examples")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def simulate(cfg: SimConfig, out: Path, *, say: Callable[[str], None] = print) -> Summary:
    """Run every strategy x seed into `out`, then write curves.png, curves.csv and summary.json."""
    from active_learning.scoring import check_strategy
    from curate.embed import Embedder

    for s in cfg.strategies:
        check_strategy(s, list(cfg.intents))
    if cfg.initial < 1 or cfg.batch < 1 or cfg.rounds < 1:
        raise ConfigError("--initial, --batch and --rounds must be at least 1")
    if cfg.initial + cfg.batch * cfg.rounds > cfg.pool_per_intent * len(cfg.intents):
        raise ConfigError(f"{cfg.initial} + {cfg.rounds} rounds x {cfg.batch} labels is more than the pool "
                          f"({cfg.pool_per_intent} x {len(cfg.intents)} intents)")
    pool, test = load_split(cfg)
    out.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(cache=out / "embeddings.sqlite")
    say(f"pool {pool.height}, test {test.height}, {len(cfg.intents)} intents (chance {1 / len(cfg.intents):.3f})")
    started = time.perf_counter()
    results: dict[str, list[list[Point]]] = {}
    for seed in cfg.seeds:             # seeds outermost: a stopped run has every strategy for its first seeds
        for s in cfg.strategies:
            results.setdefault(s, []).append(run_one(cfg, s, seed, pool, test, out / f"{s}-seed{seed}",
                                                     embedder=embedder, say=say))
    summary = summarize(results)
    rows = [{"strategy": s, "seed": seed, "round": p.round, "labels": p.labels, "accuracy": p.accuracy,
             "seconds": p.seconds} for s, runs in results.items() for seed, run in zip(cfg.seeds, runs) for p in run]
    write_text(out / "curves.csv", pl.DataFrame(rows).write_csv())
    plot(summary, out / "curves.png", f"Banking77, {len(cfg.intents)} intents, {len(cfg.seeds)} seeds (mean ± std)")
    report = {
        "config": {**asdict(cfg), "data": str(cfg.data)},
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "auc": {s: {"mean": m, "std": sd} for s, (m, sd) in summary.auc.items()},
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
