"""Training config: YAML files plus command-line `key=value` overrides, resolved once.

The keys are exactly the keyword parameters of `train.train()`, so the config is flat: a user file
only lists what it changes, over the defaults in `train/configs/qlora.yaml`. Values in overrides
are parsed as YAML (`lr=1e-4`, `pack=false`, `target_modules=[q_proj,v_proj]`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from seedloop.core.config import check_value, read_mapping, unknown_key
from seedloop.core.errors import ConfigError

DEFAULT = "qlora"
# keys whose default is null, and what they hold when set
OPTIONAL_TYPES = {"max_steps": int, "tracking_uri": str, "run_name": str}
CHOICES = {
    "overlong": ("drop", "truncate"),
    "report_to": ("mlflow", "wandb", "none"),
    "dtype": ("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32"),
    "loss_type": ("sigmoid", "ipo", "hinge"),
}
POSITIVE = ("lora_r", "lora_alpha", "max_length", "epochs", "batch_size", "grad_accum", "eval_every",
            "save_every", "keep_checkpoints", "lr", "head_lr", "beta")

ZERO_OK = {"classifier": ("epochs",)}   # a classifier with epochs=0 is its linear probe alone


def shipped_configs() -> list[str]:
    root = resources.files("train").joinpath("configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(path: Path | Any, name: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    return read_mapping(text, name)


def _config_file(name_or_path: str | Path):
    """A shipped config by name (`qlora`, `lora`, `smoke`) or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    shipped = resources.files("train").joinpath("configs", f"{name_or_path}.yaml")
    if not shipped.is_file():
        raise ConfigError(f"unknown config '{name_or_path}': use a .yaml path or one of {', '.join(shipped_configs())}")
    return shipped


def defaults(recipe: str = DEFAULT) -> dict:
    """The shipped defaults of a recipe: `qlora` (generation), `classifier` or `dpo`."""
    return _read_yaml(_config_file(recipe), f"{recipe}.yaml")


def parse_overrides(items: Iterable[str]) -> dict:
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not key=value (e.g. lr=1e-4)")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def resolve(config: str | Path | None = None, overrides: Iterable[str] = (), *, recipe: str = DEFAULT,
            **explicit: Any) -> dict:
    """Defaults of `recipe`, then the config file, then `key=value` overrides, then explicit options
    (CLI flags). Explicit options whose value is None are ignored (the flag was not given).
    """
    base = defaults(recipe)
    resolved = dict(base)
    layers = []
    if config is not None and str(config) != recipe:
        path = _config_file(config)
        layers.append((str(config), _read_yaml(path, str(config))))
    layers.append(("override", parse_overrides(overrides)))
    layers.append(("option", {k: v for k, v in explicit.items() if v is not None}))
    for where, layer in layers:
        for key, value in layer.items():
            if key not in base:
                raise ConfigError(f"{where}: {unknown_key(key, base)}; known keys: {', '.join(base)}")
            resolved[key] = _check(key, value, base[key], where, zero_ok=ZERO_OK.get(recipe, ()))
    if recipe == "classifier" and resolved["epochs"] == 0 and resolved["probe_c"] == 0:
        raise ConfigError("epochs=0 and probe_c=0 would train nothing: give the probe a C or some epochs")
    return resolved


def _check(key: str, value: Any, default: Any, where: str, zero_ok: tuple = ()) -> Any:
    if key == "target_modules" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    try:
        value = check_value(key, value, default, OPTIONAL_TYPES.get(key), CHOICES.get(key))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if value is None:
        return None
    if key in POSITIVE and (value < 0 if key in zero_ok else value <= 0):
        raise ConfigError(f"{where}: '{key}' should be {'0 or more' if key in zero_ok else 'positive'}, found {value!r}")
    if key == "eval_fraction" and not 0 <= value < 1:
        raise ConfigError(f"{where}: 'eval_fraction' should be in [0, 1), found {value!r}")
    if key in ("probe_c", "lora_dropout", "warmup_ratio", "weight_decay", "max_grad_norm", "early_stopping_threshold",
               "early_stopping_patience", "seed") and value < 0:
        raise ConfigError(f"{where}: '{key}' cannot be negative, found {value!r}")
    return value


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
