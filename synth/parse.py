"""Pulling structure out of teacher text. Teachers, small ones especially, drift from the format;
these parsers take what is usable and return nothing for the rest (the caller counts a drop)."""

from __future__ import annotations

import re

_TASK = re.compile(r"^\s*(?:[*_#]+\s*)?(?:task\s*\d+\s*[:.)\-]|\d+\s*[.):\-]|[-*\u2022]\s)\s*(?:[*_]+\s*)?(.+?)\s*$",
                   re.I | re.M)
_FIELD = re.compile(r"^\s*(?:[*_]+)?\s*(task|input|output|class label|label)\s*(?:[*_]+)?\s*:\s*(?:[*_]+)?",
                    re.I | re.M)
_PREAMBLE = re.compile(r"^\s*(?:#*\s*)?(?:rewritten|new|created|evolved|revised)?\s*prompt\s*#*\s*:\s*", re.I)
_NONE = {"", "none", "n/a", "<noinput>", "no input", "null", "-"}


def _clean(item: str) -> str:
    item = item.strip().strip("*_").strip()
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
        item = item[1:-1].strip()
    return item


def task_list(text: str) -> list[str]:
    """Items of a list written as 'Task 9: ...' or '9. ...' or '- ...', one per line."""
    return [c for c in (_clean(m.group(1)) for m in _TASK.finditer(text or "")) if c]


def fields(text: str) -> list[tuple[str, str]]:
    """('input', '...'), ('output', '...') pairs in order, for text laid out as 'Input: ...' blocks."""
    marks = list(_FIELD.finditer(text or ""))
    out = []
    for m, nxt in zip(marks, marks[1:] + [None]):
        name = m.group(1).lower().replace("class label", "label")
        value = text[m.end(): nxt.start() if nxt else len(text)].strip()
        out.append((name, value))
    return out


def input_output(text: str) -> tuple[str, str] | None:
    """The first Input/Output pair; input 'none' becomes ''."""
    pairs = fields(text)
    for i, (name, value) in enumerate(pairs):
        if name == "input" and i + 1 < len(pairs) and pairs[i + 1][0] == "output":
            return ("" if value.lower() in _NONE else value), pairs[i + 1][1]
    for name, value in pairs:  # a task that needs no input may skip straight to Output
        if name == "output":
            return "", value
    return None


def label_inputs(text: str) -> list[tuple[str, str]]:
    """(label, input) pairs from 'Class label: X / Input: Y' blocks (output-first generation)."""
    pairs = fields(text)
    out = []
    for (n1, v1), (n2, v2) in zip(pairs, pairs[1:]):
        if n1 == "label" and n2 == "input" and v1 and "\n" not in v1.strip():
            out.append((_clean(v1), "" if v2.lower() in _NONE else v2))
    return out


def yes_no(text: str) -> bool | None:
    word = (text or "").strip().lower()[:3]
    return True if word.startswith("yes") else False if word.startswith("no") else None


def single_prompt(text: str) -> str:
    """The one prompt an evolution step answered with: first paragraph, labels and quotes removed."""
    text = _PREAMBLE.sub("", (text or "").strip())
    para = re.split(r"\n\s*\n", text, maxsplit=1)[0]
    return _clean(_PREAMBLE.sub("", para))
