"""The dataset card: a README.md in the Hugging Face dataset-card format (YAML header, then sections)
in every `datasets` folder seedloop writes (`--hf-dataset` of generate, curate, review pull and pairs)
and in every round folder of a workspace.

It says what the rows are and where they came from: counts by source and status (by origin, reviewer
and round for a preference-pairs table), the teachers and prompt templates with their hashes, the
settings of the step that wrote the table, the counts it dropped by reason, the evaluation sets the
rows were decontaminated against, and the licence. Counts, teachers and templates are read from the
table itself, so a card never claims what its table does not hold; the rest is what the caller knows.

The header is the Hub's (license, pretty_name, tags, task_categories, size_categories, and `configs`,
so the folder uploaded as it is loads with `load_dataset`), plus a `seedloop` key with the same facts
for tools. Not handled: the rows' language (the Hub's `language` key is left out, not guessed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import polars as pl

from seedloop.core.atomic import write_text
from seedloop.core.errors import ConfigError

CARD_FORMAT = 1
# "unknown", not "other": seedloop cannot know the terms of the seeds or of a teacher's outputs, and
# the Hub reads "other" as "a licence not on our list", which needs a licence name and link
DEFAULT_LICENSE = "unknown"
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]*")   # the Hub's licence ids: cc-by-4.0, apache-2.0, mit
PAIR_COLUMNS = ("chosen", "rejected")
STAGES = {   # the card's first line, per stage that writes one
    "generate": "Instruction data a teacher model generated from seed examples (`seedloop generate`).",
    "curate": "The rows `seedloop curate` kept from a generated set: deduplicated, checked and filtered.",
    "review": "Records with the verdicts of human reviewers in Label Studio (`seedloop review pull`).",
    "pairs": "Preference pairs (prompt, chosen, rejected) for preference tuning such as DPO (`seedloop pairs`).",
    "round": "One round of a seedloop workspace (`seedloop cycle`).",
}
SIZES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
         (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"))   # the Hub's size_categories


def check_license(value: str | None) -> str:
    """A Hub licence id, lowercased (DEFAULT_LICENSE for None); ConfigError for anything else."""
    if value is None:
        return DEFAULT_LICENSE
    found = value.strip().lower()
    if not LICENSE_ID.fullmatch(found):
        raise ConfigError(f"--license must be a licence id such as cc-by-4.0, apache-2.0 or mit "
                          f"(https://huggingface.co/docs/hub/repositories-licenses), got {value!r}")
    return found


def is_pairs(df: pl.DataFrame) -> bool:
    """A preference-pairs table (prompt, chosen, rejected, ...) rather than a record table."""
    return all(c in df.columns for c in PAIR_COLUMNS)


def summarize(df: pl.DataFrame) -> dict:
    """The counts a card shows. Record tables: by source, status and round, reviewers, teachers and
    prompt templates; pairs tables: by origin, reviewer and round (their `prompt` is the question asked,
    not a template)."""
    if is_pairs(df):
        return {"rows": df.height, "by_origin": _counts(_column(df, "origin")),
                "by_reviewer": _counts(_column(df, "reviewer")), "by_round": _counts(_column(df, "round"))}
    reviews = [r for r in _column(df, "review") if isinstance(r, dict)]
    reviewers = [name.strip() for r in reviews if r.get("annotator") for name in r["annotator"].split(",")]
    return {"rows": df.height, "by_source": _counts(_column(df, "source")),
            "by_status": _counts(_column(df, "status")), "by_round": _counts(_column(df, "round")),
            "reviewers": _counts(reviewers, missing=False),
            "teachers": _counts(_column(df, "teacher"), missing=False), "prompts": _templates(_column(df, "prompt"))}


def drop_counts(drops: pl.DataFrame | Mapping[str, int] | None) -> dict[str, int]:
    """Rows dropped by reason, most first, from a drop table (its `reason` column) or a {reason: count}."""
    if drops is None:
        return {}
    if isinstance(drops, pl.DataFrame):
        drops = dict(drops["reason"].fill_null("unknown").value_counts().iter_rows()) if drops.height else {}
    return {str(k): int(v) for k, v in sorted(drops.items(), key=lambda kv: (-kv[1], str(kv[0]))) if v}


def write_card(folder: str | Path, df: pl.DataFrame, **card: Any) -> Path:
    """Write FOLDER/README.md (atomically) for the table `df`; `card` is dataset_card's keywords."""
    folder = Path(folder)
    path = folder / "README.md"
    write_text(path, str(dataset_card(df, name=card.pop("name", None) or folder.name, **card)))
    return path


def dataset_card(df: pl.DataFrame, *, name: str, stage: str = "table", data_files: str | None = None,
                 settings: Mapping | None = None, drops: pl.DataFrame | Mapping[str, int] | None = None,
                 decontamination: list[str] | None = None, license: str | None = None,
                 sources: list[str] | None = None):
    """The card of `df` as a huggingface_hub.DatasetCard. `data_files` is the glob of the table's files
    inside the folder (the header's `configs`); `sources` the files the rows were read from."""
    from huggingface_hub import DatasetCard, DatasetCardData

    facts = {"card_format": CARD_FORMAT, "stage": stage, **summarize(df), "settings": _plain(settings or {}),
             "dropped": drop_counts(drops), "decontamination": list(decontamination or []),
             "sources": list(sources or [])}
    licence = check_license(license)
    pairs = is_pairs(df)
    # "synthetic" only where the table says a teacher wrote rows: a pairs table does not say
    synthetic = bool(facts.get("teachers")) or "generated" in facts.get("by_source", {})
    header = DatasetCardData(
        license=licence, pretty_name=f"{name} (seedloop {stage})", task_categories=["text-generation"],
        size_categories=size_category(df.height),
        tags=["seedloop", stage, *(["synthetic"] if synthetic else []), *(["dpo", "preference"] if pairs else [])],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": data_files}]}]
        if data_files else None, seedloop=facts)
    return DatasetCard(f"---\n{header.to_yaml()}\n---\n\n{card_body(name, facts, licence, data_files)}")


def _column(df: pl.DataFrame, name: str) -> list:
    return df[name].to_list() if name in df.columns else [None] * df.height


def _counts(values: list, *, missing: bool = True) -> dict[str, int]:
    """{value: rows}, most first; None counts as 'unknown' (or is left out when `missing` is False)."""
    found: dict[str, int] = {}
    for v in values:
        if v is None and not missing:
            continue
        key = "unknown" if v is None else str(v)
        found[key] = found.get(key, 0) + 1
    return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


def _templates(prompts: list) -> list[dict]:
    """[{template, hash, rows}] from the `name@hash` each generated row carries, most used first."""
    out = []
    for spec, rows in _counts(prompts, missing=False).items():
        template, _, digest = spec.rpartition("@") if "@" in spec else (spec, "", None)
        out.append({"template": template, "hash": digest, "rows": rows})
    return out


def size_category(rows: int) -> str:
    """The Hub's size_categories bin of a row count."""
    return next((label for limit, label in SIZES if rows < limit), "other")


def _plain(value: Any) -> Any:
    """Settings as plain YAML: paths and other objects as text, tuples and sets as lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


ROW_TABLES = (("By source", "by_source", "source"), ("By status", "by_status", "status"),
              ("By origin", "by_origin", "origin"), ("By reviewer", "by_reviewer", "reviewer"),
              ("By round", "by_round", "round"), ("Reviewers (records each one decided on)", "reviewers", "reviewer"))


def card_body(name: str, facts: dict, licence: str, data_files: str | None) -> str:
    """The card's Markdown sections, from dataset_card's facts."""
    lines = [f"# {name}", "", f"{STAGES.get(facts['stage'], 'A table written by seedloop.')} "
             f"{facts['rows']} rows.", "", "## Rows", ""]
    for title, key, what in ROW_TABLES:
        if key in facts:
            lines += [f"### {title}", "", *_table((what, "rows"), facts[key].items()), ""]
    if "teachers" in facts:
        lines += _teachers_section(facts["teachers"], facts["prompts"])
    settings = facts["settings"]
    lines += ["## Settings", "", *(["```yaml", _yaml(settings), "```"] if settings else ["None recorded."]), ""]
    dropped = facts["dropped"]
    lines += ["## Dropped rows", "", *([f"{sum(dropped.values())} rows left out, by reason:", "",
                                        *_table(("reason", "rows"), dropped.items())] if dropped
                                       else ["None recorded by this step."]), ""]
    lines += _decontamination_section(facts["decontamination"])
    if facts["sources"]:
        lines += ["## Read from", "", *(f"- `{s}`" for s in facts["sources"]), ""]
    return "\n".join([*lines, *_loading_section(name, data_files), *_licence_section(licence)])


def _teachers_section(teachers: dict, prompts: list[dict]) -> list[str]:
    lines = ["## Teachers and prompt templates", ""]
    if not teachers and not prompts:
        return [*lines, "No teacher wrote these rows.", ""]
    lines += [*_table(("teacher", "rows"), teachers.items()), ""]
    rows = [(f"`{p['template']}`", f"`{p['hash']}`" if p["hash"] else "(none)", p["rows"]) for p in prompts]
    return [*lines, "Templates (`prompts/`, each with the hash of the text the rows were made with):", "",
            *_table(("template", "hash", "rows"), rows), ""]


def _decontamination_section(sets: list[str]) -> list[str]:
    if not sets:
        return ["## Decontamination", "", "None: these rows were not checked against an evaluation set "
                "(`seedloop curate --against EVAL` does it).", ""]
    return ["## Decontamination", "", "Checked against these evaluation sets; rows too close to one of "
            "their rows were left out:", "", *(f"- `{s}`" for s in sets), ""]


def _loading_section(name: str, data_files: str | None) -> list[str]:
    if not data_files:
        return []
    if data_files.endswith(".arrow"):
        code = ["from datasets import load_from_disk", "", f'rows = load_from_disk("{name}")']
        note = (f"To share it: `hf upload REPO {name} . --repo-type dataset`; the header's `configs` points "
                "`load_dataset(REPO)` at the folder's Arrow files.")
    else:
        code = ["from datasets import load_dataset", "",
                f'rows = load_dataset("parquet", data_files="{data_files}")   # in this folder']
        note = "The header's `configs` names the table, so the folder shared on the Hub loads with `load_dataset`."
    return ["## Loading", "", "```python", *code, "```", "", note, ""]


def _licence_section(licence: str) -> list[str]:
    if licence == DEFAULT_LICENSE:
        text = ("Not stated. seedloop cannot know the terms of the seeds or of a teacher's outputs; pass "
                "`--license ID` (cc-by-4.0, apache-2.0, ...) once you know them.")
    else:
        text = (f"`{licence}`, as given with `--license`. Check that the seeds' licences and the teachers' "
                "terms of use allow it.")
    return ["## Licence", "", text, ""]


def _table(header: tuple[str, ...], rows) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["(none)"]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)]


def _cell(value: Any) -> str:
    # a pipe would end the cell early; newlines would end the row
    return str(value).replace("|", "\\|").replace("\n", " ")


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).strip()
