"""A workspace: one folder per project, advanced one round at a time by `seedloop cycle`.

    seedloop.yaml        the settings below (teacher, student, thresholds, Label Studio, budgets)
    seeds.jsonl          the seed file, copied in (train split + eval split come from it)
    given_pool.jsonl     a pool given by `init --pool` (round 0 curates it instead of generating one)
    given_eval.jsonl     an evaluation file given by `init --eval` (instead of a share of the seeds)
    eval.parquet         the fixed evaluation split: never trained on, decontaminated against
    seeds_train.parquet  the other seeds: the first human-verified training records
    cache.sqlite         teacher requests and the token/cost ledger
    embeddings.sqlite    sentence embeddings by content hash
    rounds/000/          the pool: generated.parquet (or given.parquet), pool.parquet (curated), curate_drops
    rounds/NNN/          labels, train set, adapter/ (a generator or a classifier), eval.json, selection, manifest
    status.png           the metric per round (written by `seedloop status`)

The loop that uses it lives in seedloop/loop/ (see its package docstring).

`load_config` checks every key against DEFAULTS (and `train.config` and `train.overrides` against the
recipes `train.task` can run: with `auto`, both the generator's and the classifier's): an unknown key, a
value of the wrong type or out of range is an error that names the key (with a did-you-mean), so a
typo never silently falls back to a default. All of a file's errors come at once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedloop.core.config import check_value, read_mapping, unknown_key
from seedloop.core.errors import ConfigError

CONFIG_NAME = "seedloop.yaml"
FORMAT = 1

# every key a workspace config may hold, with its default; None means "optional, off"
DEFAULTS: dict[str, Any] = {
    "format": FORMAT,
    "seeds": "seeds.jsonl",
    "pool": None,
    "eval": {"file": None, "fraction": 0.2, "seed": 0, "max_new_tokens": 64},
    "teacher": "local",
    "generate": {"method": "self-instruct", "n": 60, "concurrency": 4, "seed": 0, "max_cost": None},
    "curate": {"threshold": 0.95, "judge": None, "min_score": None},
    "train": {"task": "auto", "base": "auto", "config": "auto", "overrides": {}, "unreviewed": "include",
              "objective": "sft", "dpo": {}},
    "promote": {"metric": "auto", "tolerance": 0.0},
    "select": {"k": 12, "strategy": "mnlp", "diversity": True, "pool_factor": 3.0, "max_new_tokens": 48},
    "label_studio": {"project": None, "url": None},
    "review": {"auto": False, "accept_rouge": 0.5},
}
CHOICES = {
    ("generate", "method"): ("self-instruct", "evol-instruct"),
    ("train", "task"): ("auto", "classification", "generation"),
    ("train", "unreviewed"): ("include", "exclude"),
    ("train", "objective"): ("sft", "dpo", "sft+dpo"),
    ("promote", "metric"): ("auto", "eval_loss", "accuracy", "rouge_l"),
    ("select", "strategy"): ("mnlp", "entropy", "disagreement", "label_entropy", "margin", "random"),
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
OPTIONAL = {("pool",): str, ("eval", "file"): str,
            ("generate", "max_cost"): float, ("curate", "judge"): str, ("curate", "min_score"): float,
            ("label_studio", "project"): str, ("label_studio", "url"): str}

TEMPLATE = """\
# seedloop workspace. `seedloop cycle` advances it one round; every key is checked on load.
format: 1
seeds: seeds.jsonl              # copied here by `seedloop init`
# a pool given to `init --pool`: round 0 curates it, no teacher call (null: the teacher generates one)
pool: {pool}
eval:
  # an evaluation file given to `init --eval` (null: the share of the seeds below)
  file: {eval_file}
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
  task: {task}                    # auto | classification | generation; auto: a classifier when the outputs are labels
  base: {base}                    # auto (classifier: minilm, generator: local) | local | minilm | a model folder
  config: {config}                  # auto (classifier | lora) | qlora | lora | smoke | classifier | PATH.yaml
  overrides: {overrides}                 # keys of train/configs/qlora.yaml or classifier.yaml, e.g. {{epochs: 2}}
  unreviewed: {unreviewed}           # include | exclude pool rows no reviewer has decided on yet
  objective: sft                # sft | dpo | sft+dpo (generators): DPO on the pairs reviewers' edits and rejections
                                # make (rounds/NNN/pairs.parquet); a round without pairs trains with SFT
  dpo: {{}}                       # keys of train/configs/dpo.yaml, e.g. {{beta: 0.1, lr: 5.0e-5}}
promote:
  metric: auto                  # auto (classifier: accuracy, generator: eval_loss) | eval_loss | accuracy | rouge_l
  tolerance: 0.0                # promote the new adapter unless it is worse than the last by more than this
select:
  k: {k}                         # items sent to annotators each round
  strategy: mnlp                # mnlp | entropy | disagreement | label_entropy | margin | random
  diversity: true               # k-center greedy over the pool_factor * k most uncertain
  pool_factor: 3.0
  max_new_tokens: 48
label_studio:
  project: {project}            # null = no Label Studio: selections are written, not pushed
  url: null                     # null = $LABEL_STUDIO_URL; the token is always $LABEL_STUDIO_API_KEY
review:
  auto: {auto}                  # true = the automatic reviewer stands in for annotators (see README)
  accept_rouge: 0.5             # automatic reviewer: accept when ROUGE-L(student, teacher) >= this, else edit
                                # (a classifier's label is accepted only when it is the pool row's label)
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

    def given_pool(self, config: dict) -> Path | None:
        """The pool file `init --pool` copied in, or None when round 0 generates the pool."""
        return self.root / config["pool"] if config["pool"] else None


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
    return merge(DEFAULTS, read_mapping(text, where), where)


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
            errors.append(unknown_key(str(key), defaults, prefix))
            continue
        default = defaults[key]
        if isinstance(default, dict) and path not in (("train", "overrides"), ("train", "dpo")):
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


def _check(path: tuple[str, ...], value: Any, default: Any) -> Any:
    dotted = ".".join(path)
    value = check_value(dotted, value, default, OPTIONAL.get(path), CHOICES.get(path))
    if value is None:
        return None
    if path in RANGES and not RANGES[path][0](value):
        raise ConfigError(f"'{dotted}' should be {RANGES[path][1]}, found {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"'{dotted}' cannot be negative, found {value!r}")
    return value


# the trainer recipe of each task (train/configs/NAME.yaml holds its keys and defaults), and the
# config `train.config: auto` stands for
RECIPES = {"generation": "qlora", "classification": "classifier"}
AUTO_CONFIG = {"generation": "lora", "classification": "classifier"}


def allowed_tasks(task: str) -> list[str]:
    """The tasks `train.task` allows: auto may become either."""
    return list(RECIPES) if task == "auto" else [task]


def config_tasks(train: dict) -> tuple[list[str], list[str]]:
    """(tasks whose recipe accepts `train.config`, why each other allowed task refuses it). A shipped
    generator config (lora) does not fit the classifier, so with task auto it also says which is meant."""
    from train.config import resolve  # plain YAML and checks: no torch behind it

    fits, refused = [], {}
    for task in allowed_tasks(train["task"]):
        try:
            if train["config"] != "auto":
                resolve(train["config"], recipe=RECIPES[task])
            fits.append(task)
        except ConfigError as exc:
            refused[task] = str(exc)
    if len(refused) > 1 and len(set(refused.values())) == 1:   # one reason for both (an unknown name): once
        return fits, list(refused.values())[:1]
    return fits, [f"not a {task} config: {why}" for task, why in refused.items()]


def _train_errors(train: dict) -> list[str]:
    """`train.config` and every `train.overrides` key, checked now by the trainer's own rules (those of
    every recipe the task may use), so a typo fails before a round pays the teacher rather than when
    training starts."""
    from train.config import defaults

    overrides = train.get("overrides")
    if not isinstance(overrides, dict):
        return [f"'train.overrides' should be a mapping of trainer settings, found {overrides!r}"]
    if train["objective"] != "sft":
        if train["task"] == "classification":
            return [f"'train.objective' {train['objective']} trains generators, but 'train.task' is classification"]
        dpo_errors = _dpo_errors(train.get("dpo"))
        if dpo_errors:
            return dpo_errors
    fits, problems = config_tasks(train)
    if not fits:
        return ["'train.config': " + "; ".join(problems)]
    known = {key: default for task in fits for key, default in defaults(RECIPES[task]).items()}
    errors: list[str] = []
    for key, value in overrides.items():
        if key not in known:
            errors.append(unknown_key(str(key), known, ("train", "overrides")) + _other_recipe(str(key), fits))
        elif value is None and known[key] is not None:
            errors.append(f"'train.overrides.{key}' cannot be empty (default {known[key]!r})")
        else:
            errors += _override_errors(train["config"], fits, str(key), value)
    return list(dict.fromkeys(errors))   # both recipes may say the same thing


def _dpo_errors(settings: Any) -> list[str]:
    """`train.dpo`, checked by the DPO recipe's rules (train/configs/dpo.yaml)."""
    from train.config import resolve

    if not isinstance(settings, dict):
        return [f"'train.dpo' should be a mapping of DPO settings, found {settings!r}"]
    try:
        resolve(None, [], recipe="dpo", **settings)
    except ConfigError as exc:
        return [f"'train.dpo': {str(exc).removeprefix('option: ')}"]
    return []


def _other_recipe(key: str, fits: list[str]) -> str:
    """A hint when `key` belongs to the recipe of a task that train.task / train.config rule out."""
    from train.config import defaults

    other = [task for task in RECIPES if task not in fits and key in defaults(RECIPES[task])]
    return f" (a {other[0]} setting; train.task and train.config select {' or '.join(fits)})" if other else ""


def _override_errors(config: str, tasks: list[str], key: str, value: Any) -> list[str]:
    """What each recipe that has `key` says about `value` (nothing when it is good)."""
    from train.config import defaults, resolve

    errors = []
    for task in tasks:
        if key not in defaults(RECIPES[task]):
            continue
        try:
            resolve(AUTO_CONFIG[task] if config == "auto" else config, [], recipe=RECIPES[task], **{key: value})
        except ConfigError as exc:   # "option: 'epochs' should be a whole number, ..." from the trainer
            errors.append(f"'train.overrides.{key}': {str(exc).removeprefix('option: ')}")
    return errors
