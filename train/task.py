"""Which recipe a table needs: a classifier when its outputs come from a small label set, else generation.

No torch here: the CLI and the loop decide before loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from seedloop.core.errors import ConfigError

TASKS = ("auto", "classification", "generation")
MAX_LABELS = 50          # more distinct outputs than this is free text, not labels
MAX_LABEL_WORDS = 6


def detect_labels(outputs: list[str]) -> list[str] | None:
    """The label set, if the outputs look like labels: few distinct, short, each seen more than once on
    average."""
    distinct = sorted(set(outputs))
    if (len(distinct) <= MAX_LABELS and len(distinct) <= len(outputs) / 2
            and all(len(o.split()) <= MAX_LABEL_WORDS for o in distinct)):
        return distinct
    return None


def table_outputs(df: pl.DataFrame) -> list[str]:
    """The non-empty outputs of the rows that are not rejected (what a recipe would learn)."""
    from train.classifier import label_of

    rows = df.filter(pl.col("status") != "rejected") if "status" in df.columns else df
    return [o for o in (label_of(r) for r in rows.iter_rows(named=True)) if o]


def pick_task(df: pl.DataFrame, task: str = "auto") -> str:
    """`classification` or `generation`; `auto` looks at the outputs."""
    if task not in TASKS:
        raise ConfigError(f"unknown task '{task}': expected one of {', '.join(TASKS)}")
    if task != "auto":
        return task
    return "classification" if detect_labels(table_outputs(df)) else "generation"


def default_base(task: str) -> str:
    """The packaged MiniLM encoder for classifiers (it won benchmarks/specialist.py), SmolLM2 otherwise."""
    return "minilm" if task == "classification" else "local"


@dataclass
class TrainingPlan:
    """What `seedloop train` will do: the task, the base and the resolved settings of its recipe."""

    data: object
    task: str
    base: str
    settings: dict
    labels: list[str] | None = None

    def run(self, out, *, eval_data=None, init_adapter=None, resume: bool = False, progress=None) -> dict:
        if self.task == "classification":
            from train.classifier import train_classifier

            return train_classifier(self.data, self.base, out, labels=self.labels, init_adapter=init_adapter,
                                    resume=resume, progress=progress, **self.settings)
        from train.recipe import train

        return train(self.data, self.base, out, eval_data=eval_data, init_adapter=init_adapter, resume=resume,
                     progress=progress, **self.settings)


def plan_training(data, *, task: str = "auto", base: str | None = None, config=None, overrides=(),
                  labels: list[str] | None = None, **explicit) -> TrainingPlan:
    """Read the table once, pick the task, resolve that recipe's config (YAML + key=value + flags)."""
    from seedloop.core.tables import read_table
    from train.config import resolve

    df = data if isinstance(data, pl.DataFrame) else read_table(data)
    chosen = pick_task(df, task)
    if chosen == "classification":
        # the generator's flags (4-bit aside) mean nothing to a classifier
        kept = {k: v for k, v in explicit.items() if k == "four_bit"}
        try:
            settings = resolve(config, overrides, recipe="classifier", **kept)
        except ConfigError:
            if task != "auto":
                raise
            # a config or key=value only the generator knows (max_steps, pack, ...) asks for a generator
            chosen, settings = "generation", resolve(config, overrides, **explicit)
    else:
        settings = resolve(config, overrides, **explicit)
    return TrainingPlan(df, chosen, str(base or default_base(chosen)), settings, labels)
