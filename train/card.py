"""The model card: a README.md in the Hugging Face model-card format (YAML header, then sections)
in every trained folder, every export and every promoted adapter.

It says what the model is (base, task, labels), what it learnt from (the training table's lineage:
rows by source and status, rounds, labels, reviewers), how well it does (the evaluation metrics, once
an evaluation is known) and how it was trained (the saved config), and under which licence. Everything
comes from files the folder already holds (metrics.json, train_config.yaml or classifier.json), so an
export or a promotion can write the card again with more in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import yaml

from seedloop.core.atomic import write_text

PACKAGED = {  # the packaged bases: their Hugging Face names and licences
    "local": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    "minilm": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
}


def lineage(df: pl.DataFrame) -> dict:
    """Where a training table's rows came from: counts by source, status, round, label and reviewer."""
    def counts(values) -> dict:
        series = pl.Series(values, dtype=pl.Utf8).fill_null("unknown")
        return dict(sorted(series.value_counts().iter_rows()))

    def column(name: str) -> list:
        return df[name].to_list() if name in df.columns else [None] * df.height

    reviewers = [r.get("annotator") for r in column("review") if r and r.get("annotator")]
    return {"rows": df.height, "by_source": counts(column("source")), "by_status": counts(column("status")),
            "by_round": counts([None if r is None else str(r) for r in column("round")]),
            "labels": len({o for o in column("output") if o}), "reviewers": counts(reviewers)}


def write_model_card(folder: str | Path, out: str | Path | None = None, *, evaluation: dict | None = None,
                     merged: bool = False) -> Path:
    """Write OUT/README.md (OUT defaults to `folder`) from the files in `folder`. `evaluation` adds (or
    replaces) the evaluation metrics, kept in OUT/evaluation.json for later cards. Returns the card's path."""
    folder, out = Path(folder), Path(out or folder)
    metrics = _read_json(folder / "metrics.json")
    if evaluation:
        write_text(out / "evaluation.json", json.dumps(evaluation, indent=1))
    evaluation = evaluation or _read_json(folder / "evaluation.json")
    meta = _read_json(folder / "classifier.json")
    config = meta.get("settings") if meta else _read_yaml(folder / "train_config.yaml")
    base = str((meta or config or {}).get("base") or "unknown")
    base_name, licence = _base_identity(base, (meta or config or {}).get("base_path"))
    task = "classification" if meta else "generation"
    header = {"base_model": base_name, "license": licence, "library_name": "transformers" if merged else "peft",
              "pipeline_tag": "text-classification" if meta else "text-generation",
              "tags": ["seedloop", task, *(["lora"] if not merged else [])]}
    body = [f"# {out.name}: a seedloop {task} specialist", "",
            f"Fine-tuned from `{base_name}` with LoRA by seedloop"
            f"{' (merged into the base)' if merged else ''}." +
            (f" Labels ({len(meta['labels'])}): {', '.join(meta['labels'])}." if meta else ""),
            *_lineage_section(metrics.get("data", {}).get("lineage")),
            *_metrics_section(evaluation, metrics),
            "## Training config", "", "```yaml", yaml.safe_dump(config or {}, sort_keys=True).strip(), "```", "",
            "## Licence", "", f"`{licence}`, the base model's licence. Check that your training data's licence "
            "allows this use too.", ""]
    path = out / "README.md"
    write_text(path, "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + "\n".join(body))
    return path


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _base_identity(base: str, base_path: str | None) -> tuple[str, str]:
    """(Hugging Face name, licence) of a base: packaged ones are known; a folder's README header may say."""
    if base.lower() in PACKAGED:
        return PACKAGED[base.lower()]
    card = Path(base_path or base) / "README.md"
    text = card.read_text(errors="replace") if card.is_file() else ""
    header = (yaml.safe_load(text.split("---")[1]) or {}) if text.startswith("---") else {}
    config = _read_json(Path(base_path or base) / "config.json")
    return str(header.get("base_model") or config.get("_name_or_path") or base), str(header.get("license") or "other")


def _table(rows: dict) -> list[str]:
    return ["| | count |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows.items())] if rows else ["(none)"]


def _lineage_section(found: dict | None) -> list[str]:
    if not found:
        return ["", "## Training data", "", "Not recorded.", ""]
    summary = found.get("summary") or f"{found['rows']} rows in the training table, {found['labels']} distinct outputs."
    lines = ["", "## Training data", "", summary, ""]
    for title, key in (("By source", "by_source"), ("By origin", "by_origin"), ("By status", "by_status"),
                       ("By round", "by_round"), ("Reviewers", "reviewers"), ("Reviewers", "by_reviewer")):
        if key in found:   # a preference-pairs run (train/dpo.py) has origins instead of sources and statuses
            lines += [f"### {title}", "", *_table(found[key] or {}), ""]
    return lines


def _metrics_section(evaluation: dict | None, metrics: dict) -> list[str]:
    lines = ["## Evaluation", ""]
    if evaluation:
        lines += ["| metric | value |", "|---|---|",
                  *(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                    for k, v in evaluation.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool))]
    else:
        lines.append("Not evaluated yet (`seedloop evaluate --model DIR --data TABLE`).")
    training = {k: metrics[k] for k in ("train_loss", "final_eval_loss", "best_eval_loss", "steps", "train_examples")
                if metrics.get(k) is not None}
    if training:
        lines += ["", "During training:", "", *(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
                                                for k, v in training.items())]
    return [*lines, ""]
