"""Price table: dollars per million input and output tokens, per teacher spec."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from seedloop.core.errors import ConfigError, InputError, require_file


@dataclass(frozen=True)
class Price:
    input: float   # $ per 1M input tokens
    output: float  # $ per 1M output tokens

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


class PriceTable:
    def __init__(self, entries: dict[str, Price]):
        self.entries = entries

    @classmethod
    def load(cls, override: str | Path | None = None) -> "PriceTable":
        entries = _parse(resources.files("synth").joinpath("prices.yaml").read_text(), "synth/prices.yaml")
        if override:
            path = require_file(override, "price file")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise InputError("not valid UTF-8: expected a YAML price table", file=str(path)) from None
            entries.update(_parse(text, str(path)))
        return cls(entries)

    def get(self, spec: str) -> Price | None:
        if spec in self.entries:
            return self.entries[spec]
        for pattern, price in self.entries.items():
            if "*" in pattern and fnmatch.fnmatchcase(spec, pattern):
                return price
        return None

    def require(self, spec: str) -> Price:
        price = self.get(spec)
        if price is None:
            raise ConfigError(f"no price for teacher '{spec}', so --max-cost cannot be enforced: add "
                              f"'{spec}: {{input: USD_PER_1M, output: USD_PER_1M}}' to a file passed with --prices")
        return price


def _parse(text: str, where: str) -> dict[str, Price]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML ({getattr(exc, 'problem', None) or exc})", file=where,
                         line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping of teacher spec to {input, output}", file=where)
    out = {}
    for spec, value in data.items():
        try:
            out[str(spec)] = Price(float(value["input"]), float(value["output"]))
        except (TypeError, KeyError, ValueError):
            raise InputError("expected {input: NUMBER, output: NUMBER}", file=where, field=str(spec)) from None
        if not (out[str(spec)].input >= 0 and out[str(spec)].output >= 0):   # also refuses NaN
            raise InputError(f"prices cannot be negative, found {value}", file=where, field=str(spec))
    return out
