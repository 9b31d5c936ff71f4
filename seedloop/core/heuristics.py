"""Cheap quality rules shared by generation and curation. Each returns a drop reason or None.

The reasons are stable strings: they are counted, stored on dropped rows, and shown in reports.
"""

from __future__ import annotations

import re

from seedloop.core.text import normalize, tokens

# Self-Instruct drops instructions a text-only model cannot follow (and program-writing tasks).
BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map",
             "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
_BLACKLIST_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in BLACKLIST) + r")\b", re.I)
_REFUSAL_RE = re.compile(
    r"\b(as an ai( language model)?|i'?m sorry|i am sorry|i apologi[sz]e|i cannot (help|assist|provide|do)|"
    r"i can'?t (help|assist|provide|do)|i'?m (not able|unable) to|i am (not able|unable) to|"
    r"i do not have (access|the ability)|i don'?t have (access|the ability))\b", re.I)

MIN_INSTRUCTION_WORDS = 3
MAX_INSTRUCTION_WORDS = 150
MAX_OUTPUT_CHARS = 8000


def check_instruction(text: str) -> str | None:
    text = (text or "").strip()
    if not text:
        return "empty_instruction"
    n = len(text.split())
    if n < MIN_INSTRUCTION_WORDS:
        return "instruction_too_short"
    if n > MAX_INSTRUCTION_WORDS:
        return "instruction_too_long"
    if _BLACKLIST_RE.search(text):
        return "unsupported_modality"
    if not text[0].isalnum() and text[0] not in "\"'(":
        return "starts_with_punctuation"
    if not text[0].isascii():
        return "non_english_start"
    return None


def check_output(instruction: str, output: str | None, *, truncated: bool = False,
                 max_chars: int = MAX_OUTPUT_CHARS) -> str | None:
    out = (output or "").strip()
    if not out or not tokens(out):
        return "empty_output"
    if truncated:
        return "truncated_output"
    if len(out) > max_chars:
        return "output_too_long"
    if _REFUSAL_RE.search(out[:300]):
        return "refusal"
    ins = normalize(instruction)
    if ins and len(ins) > 20 and ins in normalize(out):
        return "copied_instruction"
    return None
