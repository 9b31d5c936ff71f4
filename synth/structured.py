"""Outputs that follow a JSON Schema (`seedloop generate --schema FILE`).

The schema governs the output of each record only; the instruction and the input stay free text.
So a method first makes its instruction and input as usual, then asks for the output in a request of
its own that carries the schema (`ChatRequest.json_schema`): each teacher turns that into what its
API enforces (OpenAI: `response_format` json_schema; Anthropic: a forced tool call; llama.cpp: a
grammar built from the schema). The answer is parsed and validated here all the same, because not
every path enforces it fully (OpenAI's non-strict mode, a cut answer, a transformers teacher). A
failing answer is asked again once, with the validator's message and another seed (so the cache
cannot serve the same answer twice); a second failure is the caller's `schema_invalid` drop.

Not handled: constrained decoding for `local:FOLDER` (transformers) teachers; their answers are
validated like the others, so expect more drops. Formats (`"format": "email"`) are not checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from prompts import load_template
from seedloop.core.errors import InputError, require_file
from synth.engine import TeacherClient
from synth.teachers.base import ChatRequest


@dataclass(frozen=True)
class OutputSchema:
    """A checked JSON Schema: `text` (compact, sorted JSON) goes on requests, `ref` on rows and cards."""

    text: str
    source: str = ""   # the file it came from, for messages
    schema: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, schema: Any, source: str = "") -> "OutputSchema":
        if not isinstance(schema, dict):
            raise InputError(f"expected a JSON Schema object, found {type(schema).__name__}", file=source or None)
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = "/".join(map(str, exc.absolute_path)) or None
            raise InputError(f"not a valid JSON Schema: {exc.message}", file=source or None, field=where) from None
        return cls(json.dumps(schema, sort_keys=True, separators=(",", ":")), source, schema)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    @property
    def ref(self) -> str:
        return f"schema@{self.digest}"

    @property
    def setting(self) -> dict:
        """What a dataset card's settings show: the file's name and the schema's hash."""
        return {"schema": f"{Path(self.source).name or 'schema'}@{self.digest}"}

    def check(self, text: str, *, truncated: bool = False) -> tuple[Any, str | None]:
        """(the parsed value, None) when `text` is JSON valid against the schema, else (None, why not)."""
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            cut = " (cut at max_tokens)" if truncated else ""
            return None, f"not JSON{cut}: {exc}"
        error = best_match(jsonschema.validators.validator_for(self.schema)(self.schema).iter_errors(value))
        if error is None:
            return value, None
        where = "/".join(map(str, error.absolute_path))
        return None, f"{where}: {error.message}" if where else error.message


def load_schema(path: str | Path) -> OutputSchema:
    """A JSON Schema file, checked; InputError naming the file (and line) when it is not one."""
    path = require_file(path, "JSON Schema file")
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=str(path), line=exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", file=str(path)) from None
    return OutputSchema.of(schema, str(path))


def compact(value: Any) -> str:
    """The stored form of a structured output: one line of JSON, keys in the teacher's order."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SchemaAnswers:
    """Asks the teacher for the output of (instruction, input) under the schema, retrying once."""

    def __init__(self, client: TeacherClient, schema: OutputSchema, *, temperature: float, max_tokens: int):
        self.client, self.schema = client, schema
        self.temperature, self.max_tokens = temperature, max_tokens
        self.template = load_template("structured/respond")

    @property
    def ref(self) -> str:
        return f"{self.template.ref}+{self.schema.ref}"

    async def answer(self, instruction: str, input: str, seed: int) -> tuple[str | None, str, str | None]:
        """(output as compact JSON, the answer's text, None), or (None, the last answer's text, why it
        failed) after the retry."""
        problem, text = "", ""
        for attempt in range(2):
            messages = self.template.render(instruction=instruction, input=input, schema=self.schema.text,
                                            problem=problem)
            reply = await self.client.complete(ChatRequest.of(
                messages, max_tokens=self.max_tokens, temperature=self.temperature, seed=seed + attempt,
                json_schema=self.schema.text))
            text = reply.text
            value, problem = self.schema.check(text, truncated=reply.truncated)
            if problem is None:
                return compact(value), text, None
        return None, text, problem

    async def outputs(self, instruction: str, inputs: list[str], seed: int, *,
                      stage: str) -> tuple[list[tuple[str, str]], list[dict]]:
        """(input, output) pairs for the inputs whose output passed, and a `schema_invalid` drop for each
        other one, with the validator's message."""
        answers = await asyncio.gather(*(self.answer(instruction, inp, seed + 2 * i) for i, inp in enumerate(inputs)))
        pairs, drops = [], []
        for inp, (output, text, problem) in zip(inputs, answers):
            if problem is None:
                pairs.append((inp, output))
            else:
                drops.append({"reason": "schema_invalid", "text": text, "stage": stage, "instruction": instruction,
                              "input": inp, "schema_error": problem})
        return pairs, drops
