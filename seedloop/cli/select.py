"""`seedloop select` and `seedloop simulate`: active learning from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from seedloop.cli.common import RAY_ADDRESS, StepProgress, console, handle_errors, out, parse_labels, quiet_libraries
from seedloop.core.errors import require_file
from seedloop.core.tables import read_table, write_table
from seedloop.executors import check_executor

STRATEGY_HELP = ("mnlp (length-normalized log-prob of the greedy answer), entropy (mean token entropy), "
                 "label_entropy or margin (over --labels), disagreement (sampled answers), random.")


@handle_errors
def select(
    model: Path = typer.Option(..., "--model", help="Trained adapter folder (a `seedloop train --out`), or a model folder."),
    pool: Path = typer.Option(..., "--pool", help="Unlabeled records to choose from (.parquet or .jsonl)."),
    k: int = typer.Option(..., "--k", min=1, help="How many items to pick."),
    strategy: str = typer.Option("mnlp", "--strategy", help=STRATEGY_HELP),
    labels: str = typer.Option(None, "--labels", help="The label set (for label_entropy/margin): comma-separated, "
                               "or a .json list / .txt file."),
    labels_from: str = typer.Option(None, "--labels-from", help="Take the label set from the outputs of this table."),
    diversity: bool = typer.Option(True, "--diversity/--no-diversity", help="k-center greedy over the "
                                   "pool-factor*k most uncertain, so a batch is not ten paraphrases."),
    pool_factor: float = typer.Option(3.0, "--pool-factor", min=1,
                                      help="Shortlist size for diversity, as a multiple of k."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", min=1, help="Longest answer generated per item."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Items per forward pass."),
    samples: int = typer.Option(5, "--samples", min=2, help="Sampled answers per item (disagreement)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for random and sampling."),
    round_: int = typer.Option(None, "--round", min=0, help="Round number to stamp on the picks (default: from the "
                               "adapter folder name, e.g. rounds/003/adapter -> 3)."),
    out_path: Path = typer.Option(None, "--out", help="Write the k picks here (record, uncertainty, strategy, answer)."),
    scores_path: Path = typer.Option(None, "--scores", help="Write the same columns for every pool item here."),
    push: str = typer.Option(None, "--push", help="Send the picks to this Label Studio project, the model's answer "
                             "prefilled and the uncertainty as the score ($LABEL_STUDIO_URL, $LABEL_STUDIO_API_KEY)."),
    executor: str = typer.Option("local", "--executor", help="local | ray: score and embed the pool on Ray workers "
                                 "(same scores and picks; not for --strategy disagreement)."),
    ray_address: str = RAY_ADDRESS,
) -> None:
    """Pick the k pool items the fine-tuned model is least sure of, and not near-copies of each other.

    Without --out, --scores or --push, the picks are printed.
    """

    check_executor(executor, ray_address)
    require_file(pool, field="--pool")
    table = read_table(pool)
    choices = parse_labels(labels, labels_from)
    round_ = round_ if round_ is not None else _round_of(model)
    conn = None
    if push:   # connect first: a wrong token or a server that is down should not cost a scoring pass
        from curate.review import connect
        conn = connect()
    quiet_libraries()
    from active_learning.pool import select_from_pool

    console.print(f"[bold]seedloop select[/] {k} of {table.height} from {pool} with {model}, strategy {strategy}"
                  + (", diversity" if diversity and strategy != "random" else ""), highlight=False)
    with StepProgress(remaining=True) as progress:
        options = dict(strategy=strategy, labels=choices, diversity=diversity, pool_factor=pool_factor,
                       max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, round=round_,
                       where=str(pool), progress=progress)
        if executor == "ray":
            from seedloop.executors.ray_data import select_on_ray

            chosen = select_on_ray(model, table, k, address=ray_address, **options)
        else:
            chosen = select_from_pool(model, table, k, samples=samples, **options)
    _deliver(chosen, out_path=out_path, scores_path=scores_path, conn=conn, project=push,
             version=f"round-{round_}" if round_ is not None else f"adapter-{model.name}")


def _deliver(chosen, *, out_path: Path | None, scores_path: Path | None, conn, project: str | None,
             version: str) -> None:
    """Write the picks and scores, push the picks to Label Studio, and print what went where."""
    if scores_path:
        write_table(chosen.scores, scores_path)
    if out_path:
        write_table(chosen.picks, out_path)
    if conn is not None:
        from curate.review import push_records

        result = push_records(conn, chosen.picks, project, model_version=version)
        console.print(f"pushed {result.imported} new task(s) to '{project}' (model_version {version}; "
                      f"{result.rows - result.imported} already there)", highlight=False)
    _summary(chosen, show_all=not (out_path or scores_path or project))
    for path, what in ((out_path, "picks"), (scores_path, "scores for every pool item")):
        if path:
            console.print(f"{what}: {path}", highlight=False)


def _round_of(model: Path) -> int | None:
    for part in reversed(model.resolve().parts):
        if part.isdigit():
            return int(part)
    return None


def _summary(chosen, *, show_all: bool) -> None:
    u = chosen.pool.uncertainty
    table = Table(title=f"{chosen.picks.height} picked of {len(u)} ({chosen.pool.strategy}; pool uncertainty "
                        f"median {_fmt(float(_median(u)))}, max {_fmt(float(u.max()))})")
    table.add_column("#", justify="right")
    table.add_column("uncertainty", justify="right")
    table.add_column("instruction")
    table.add_column("model's answer")
    rows = chosen.picks.to_dicts()
    for i, r in enumerate(rows if show_all else rows[:10], 1):
        prompt = (r["instruction"] or "") + (f" | {r['input']}" if r.get("input") else "")
        table.add_row(str(i), _fmt(r["scores"]["uncertainty"]), _short(prompt), _short(r["output"] or ""))
    (out if show_all else console).print(table)


def _median(u):
    import numpy as np

    finite = u[np.isfinite(u)]
    return np.median(finite) if len(finite) else float("nan")


def _fmt(x) -> str:
    return "inf" if x is None else f"{x:.3f}"


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@handle_errors
def simulate(
    out_dir: Path = typer.Option(Path("out/simulation"), "--out", help="Folder for classifiers, curves.png, "
                                 "curves.csv and summary.json (a re-run resumes here)."),
    strategies: str = typer.Option(None, "--strategies", help="Comma-separated [START/]SCORE[+div]: START "
                                   "random|kmeans|kcenter (round 0's labels), SCORE random|margin|label_entropy|mnlp, "
                                   "+div = k-center diversity over the shortlist (default: random, random+div, margin, "
                                   "margin+div, kmeans/margin+div)."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Random seeds; the strategies of a seed start paired."),
    intents: str = typer.Option(None, "--intents", help="Comma-separated Banking77 intents (default: 20 confusable "
                                "card, transfer, top-up and cash intents, see active_learning/simulate.py)."),
    pool_per_intent: int = typer.Option(50, "--pool-per-intent", min=1),
    test_per_intent: int = typer.Option(20, "--test-per-intent", min=1),
    initial: int = typer.Option(40, "--initial", min=1, help="Labels to start from (round 0)."),
    batch: int = typer.Option(40, "--batch", min=1, help="Labels queried per round."),
    rounds: int = typer.Option(6, "--rounds", min=1, help="Query rounds after the initial one."),
    pool_factor: float = typer.Option(3.0, "--pool-factor", min=1, help="Shortlist size for +div, as a multiple "
                                      "of --batch."),
    base: str = typer.Option("minilm", "--base", help="The student's base: minilm (packaged), local (SmolLM2) or "
                             "a model folder."),
    data: Path = typer.Option(None, "--data", help="A CSV with text,category columns (default: the Banking77 "
                              "train.csv shipped in seedloop/core/data)."),
    settings: list[str] = typer.Argument(None, help="Student settings as key=value (train/configs/classifier.yaml),"
                                         " e.g. epochs=0 for the linear probe alone."),
) -> None:
    """Pool-based simulation on Banking77: uncertainty sampling vs random, learning curves and label savings.

    Each round the oracle reveals the true intents of the picked messages, the classifier student
    is retrained warm-started, and accuracy is measured on a fixed held-out split. The defaults
    (1,000-message pool, 5 strategies x 5 seeds x 7 rounds) take hours on 2 CPU cores with the
    student's shipped settings, and about 30 minutes with epochs=0.
    """
    from train.config import parse_overrides

    quiet_libraries()
    from active_learning import simulate as sim

    cfg = sim.SimConfig(seeds=tuple(range(seeds)), pool_per_intent=pool_per_intent, test_per_intent=test_per_intent,
                        initial=initial, batch=batch, rounds=rounds, pool_factor=pool_factor, base=base,
                        student_settings=parse_overrides(settings or []))
    if strategies:
        cfg.strategies = tuple(x.strip() for x in strategies.split(",") if x.strip())
    if intents:
        cfg.intents = tuple(i.strip() for i in intents.split(",") if i.strip())
    if data:
        cfg.data = str(data)
    summary = sim.simulate(cfg, out_dir, say=lambda m: console.print(m, highlight=False))
    out.print(_simulation_table(summary, cfg))
    console.print(f"curves: {out_dir / 'curves.png'}, table: {out_dir / 'curves.csv'}, figures: "
                  f"{out_dir / 'summary.json'}", highlight=False)


def _simulation_table(summary, cfg) -> Table:
    from active_learning.simulate import fraction

    table = Table(title=f"Banking77 active learning ({len(cfg.seeds)} seeds, {len(cfg.intents)} intents)")
    for col in ("strategy", "labels", "final accuracy", "AUC (norm.)", "AUC - random's (paired)",
                "labels to reach random's final"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for s, curve in summary.curves.items():
        reach, frac = summary.labels_to_reach[s], fraction(summary, s)
        gain = summary.gain.get(s)
        table.add_row(s, f"{int(summary.labels[s][-1])}", f"{curve.mean(axis=0)[-1]:.3f}",
                      f"{summary.auc[s][0]:.3f} ± {summary.auc[s][1]:.3f}",
                      "" if gain is None or s == "random" else f"{gain[0]:+.4f} ± {gain[1]:.4f}",
                      "never" if reach is None else f"{reach:.0f} ({frac:.0%})")
    return table
