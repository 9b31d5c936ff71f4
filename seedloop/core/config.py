"""Settings files, checked the same way everywhere (the loop's seedloop.yaml, the trainer's recipes).

- `read_mapping(text, where)`: YAML text that must hold a mapping; a syntax error names the line.
- `unknown_key(key, known, prefix)`: "unknown key 'select.kk' (did you mean 'select.k'?)".
- `check_value(dotted, value, default, expected=None, choices=None)`: the value in the default's type
  (an int where a float is expected becomes a float; YAML 1.1's `1e-4`, read as text, becomes a
  number), or a ConfigError that names the key, what it should be and what was found.

Range rules (positive, at least 1, a fraction) stay with each file's own keys.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

import yaml

from seedloop.core.errors import ConfigError


def read_mapping(text: str, where: str) -> dict:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, found {type(data).__name__}")
    return data


def unknown_key(key: str, known: Iterable[str], prefix: tuple[str, ...] = ()) -> str:
    hint = difflib.get_close_matches(key, list(known), n=1)
    dotted = ".".join((*prefix, key))
    return f"unknown key '{dotted}'" + (f" (did you mean '{'.'.join((*prefix, hint[0]))}'?)" if hint else "")


def kind(t: type) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false", dict: "a mapping",
            list: "a list"}.get(t, t.__name__)


def check_value(dotted: str, value: Any, default: Any, expected: type | None = None,
                choices: Iterable[Any] | None = None) -> Any:
    """`expected` is the type of a key whose default is None (None: anything goes)."""
    expected = expected if default is None else type(default)
    if value is None:
        if default is None:
            return None
        raise ConfigError(f"'{dotted}' cannot be empty (default {default!r})")
    if expected is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is not None and (not isinstance(value, expected) or (expected in (int, float) and isinstance(value, bool))):
        raise ConfigError(f"'{dotted}' should be {kind(expected)}, found {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"'{dotted}' should be one of {', '.join(map(str, choices))}, found {value!r}")
    return value
