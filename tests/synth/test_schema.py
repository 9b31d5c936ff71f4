"""`generate --schema`: outputs that validate against a JSON Schema, through OpenAI's response_format
(the fake server, and llama-cpp-python's server, which takes its own json_object form), Anthropic's
forced tool use (the fake server) and the embedded llama.cpp teacher's grammar. A failing answer is
asked again once, then dropped as schema_invalid with the validator's message."""

from __future__ import annotations

import asyncio
import hashlib
import json

import jsonschema
import pytest

from seedloop.core.errors import InputError
from seedloop.core.tables import read_table
from synth.structured import OutputSchema, load_schema
from synth.teachers.anthropic import AnthropicTeacher, _tool_schema
from synth.teachers.base import ChatRequest, cache_key
from synth.teachers.openai import _strict_ok
from tests.conftest import EXAMPLE_SEEDS, run_cli

SCHEMA = {"type": "object", "properties": {"intent": {"type": "string", "enum": ["card", "transfer", "other"]},
                                           "urgent": {"type": "boolean"}}, "required": ["intent", "urgent"]}
OPENAI = {"OPENAI_API_KEY": "sk-test"}
ANTHROPIC = {"ANTHROPIC_API_KEY": "sk-ant-test"}
RETRY_NOTE = "Your previous answer was rejected"


@pytest.fixture
def schema_file(tmp_path):
    path = tmp_path / "intent.json"
    path.write_text(json.dumps(SCHEMA, indent=2))
    return path


def generate(tmp_path, schema_file, *extra, n=6, env=OPENAI):
    return run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", n, "--out", tmp_path / "out.jsonl",
                   "--cache", tmp_path / "cache.sqlite", "--schema", schema_file, "--drops", tmp_path / "drops.jsonl",
                   *extra, env=env)


def assert_outputs_valid(df) -> None:
    assert df.height
    for output in df["output"]:
        assert output == json.dumps(json.loads(output), separators=(",", ":"))   # stored compact
        jsonschema.validate(json.loads(output), SCHEMA)


def structured_bodies(server) -> list[dict]:
    return [s.body for s in server.seen if "response_format" in s.body or "tool_choice" in s.body]


# -- the schema itself -------------------------------------------------------------------------------

def test_check_names_what_is_wrong():
    schema = OutputSchema.of(SCHEMA, "intent.json")
    assert schema.check('{"intent": "card", "urgent": true}') == ({"intent": "card", "urgent": True}, None)
    assert schema.check('{"intent": "card"}')[1] == "'urgent' is a required property"
    assert schema.check('{"intent": "lost", "urgent": true}')[1].startswith("intent: 'lost' is not one of")
    value, problem = schema.check('{"intent": "ca', truncated=True)
    assert value is None and problem.startswith("not JSON (cut at max_tokens): ")
    assert schema.setting == {"schema": f"intent.json@{schema.digest}"} and schema.ref == f"schema@{schema.digest}"
    assert OutputSchema.of(dict(reversed(SCHEMA.items()))).digest == schema.digest   # key order does not count


def test_bad_schema_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "type": "object",\n  "properties": {\n}}}\n')
    with pytest.raises(InputError, match=r"broken.json:4: not valid JSON"):
        load_schema(broken)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"list.json: expected a JSON Schema object, found list"):
        load_schema(tmp_path / "list.json")
    (tmp_path / "typo.json").write_text('{"type": "object", "properties": {"a": {"type": "strng"}}}')
    with pytest.raises(InputError, match=r"typo.json field 'properties/a/type': not a valid JSON Schema"):
        load_schema(tmp_path / "typo.json")
    with pytest.raises(InputError, match="JSON Schema file not found"):
        load_schema(tmp_path / "missing.json")


def test_a_request_without_a_schema_keeps_its_cache_key():
    plain = ChatRequest.of([{"role": "user", "content": "hi"}], seed=3)
    old = {"provider": "openai", "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 512,
           "temperature": 0.7, "top_p": 1.0, "stop": [], "seed": 3}
    assert cache_key("openai", "m", plain) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    shaped = ChatRequest.of([{"role": "user", "content": "hi"}], seed=3, json_schema=json.dumps(SCHEMA))
    assert cache_key("openai", "m", shaped) != cache_key("openai", "m", plain)


def test_openai_strict_only_where_the_api_takes_it():
    assert not _strict_ok(SCHEMA)   # no additionalProperties: false
    strict = {**SCHEMA, "additionalProperties": False}
    assert _strict_ok(strict)
    nested = {**strict, "properties": {**SCHEMA["properties"], "who": {"type": "object", "properties": {}}}}
    assert not _strict_ok({**nested, "required": [*SCHEMA["required"], "who"]})
    assert not _strict_ok({"type": "string"})


def test_anthropic_tool_input_is_an_object(fake_llm, monkeypatch):
    """Tool inputs must be objects: another schema is wrapped as {"output": ...} and unwrapped again."""
    assert _tool_schema(SCHEMA) == (SCHEMA, False)
    labels = {"type": "string", "enum": ["card", "transfer"], "$defs": {"x": {"type": "string"}}}
    wrapped, was_wrapped = _tool_schema(labels)
    assert was_wrapped and wrapped["properties"]["output"] == {"type": "string", "enum": ["card", "transfer"]}
    assert wrapped["$defs"] == labels["$defs"]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    teacher = AnthropicTeacher("claude-fake", base_url=fake_llm.anthropic_url)
    request = ChatRequest.of([{"role": "user", "content": "Which intent?"}], json_schema=json.dumps(labels))
    reply = asyncio.run(_complete_once(teacher, request))
    assert json.loads(reply.text) in ("card", "transfer")
    assert fake_llm.seen[-1].body["tool_choice"] == {"type": "tool", "name": "record_output"}


async def _complete_once(teacher, request):
    try:
        return await teacher.complete(request)
    finally:
        await teacher.aclose()


# -- the fakes of the two APIs ------------------------------------------------------------------------

def test_openai_outputs_validate_and_lineage_shows_the_schema(fake_llm, tmp_path, schema_file):
    res = generate(tmp_path, schema_file, "--teacher", "openai:fake", "--base-url", fake_llm.url,
                   "--hf-dataset", tmp_path / "hf")
    assert res.returncode == 0, res.stderr
    df, schema = read_table(tmp_path / "out.jsonl"), load_schema(schema_file)
    assert df.height == 6
    assert_outputs_valid(df)
    assert not any(i.lstrip().startswith("{") for i in df["instruction"])   # instructions stay free text
    assert all(p.startswith("self_instruct/instructions@") and p.endswith(f"+{schema.ref}") and
               "+structured/respond@" in p for p in df["prompt"])
    formats = [b["response_format"] for b in structured_bodies(fake_llm)]
    assert formats and all(f == {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA,
                                                                        "strict": False}} for f in formats)
    card = (tmp_path / "hf" / "README.md").read_text()
    assert f"intent.json@{schema.digest}" in card


def test_an_invalid_answer_is_asked_again_once(fake_llm, tmp_path, schema_file):
    fake_llm.plan.bad_json = 1
    res = generate(tmp_path, schema_file, "--teacher", "openai:fake", "--base-url", fake_llm.url)
    assert res.returncode == 0, res.stderr
    assert_outputs_valid(read_table(tmp_path / "out.jsonl"))
    retries = [b for b in structured_bodies(fake_llm) if RETRY_NOTE in b["messages"][-1]["content"]]
    assert len(retries) == 1 and "not JSON" in retries[0]["messages"][-1]["content"]
    drops = [json.loads(line) for line in (tmp_path / "drops.jsonl").read_text().splitlines()]
    assert not [d for d in drops if d["reason"] == "schema_invalid"]


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_second_invalid_answer_is_dropped_with_the_reason(fake_llm, tmp_path, schema_file, api):
    """One slot at a time (concurrency 1), so the two bad answers are the first response and its retry."""
    fake_llm.plan.bad_json = 2
    teacher = ("--teacher", "openai:fake", "--base-url", fake_llm.url) if api == "openai" else \
        ("--teacher", "anthropic:claude-fake", "--base-url", fake_llm.anthropic_url)
    res = generate(tmp_path, schema_file, *teacher, "--method", "evol-instruct", "--concurrency", 1, n=3,
                   env=OPENAI if api == "openai" else ANTHROPIC)
    assert res.returncode == 0, res.stderr
    assert_outputs_valid(read_table(tmp_path / "out.jsonl"))
    drops = [json.loads(line) for line in (tmp_path / "drops.jsonl").read_text().splitlines()]
    (bad,) = [d for d in drops if d["reason"] == "schema_invalid"]
    assert bad["stage"] == "response" and bad["instruction"]
    why = "not JSON: Expecting value" if api == "openai" else "'intent' is a required property"
    assert why in bad["detail"] and bad["detail"].startswith("operation ")
    assert "dropped: schema_invalid" in res.stderr
    if api == "anthropic":
        tools = [b["tools"] for b in structured_bodies(fake_llm)]
        assert tools and all(t == [{"name": "record_output", "description": "Record the answer.",
                                    "input_schema": SCHEMA}] for t in tools)


def test_bad_schema_on_the_command_line_is_one_line(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text('{"type": "objekt"}')
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--out", tmp_path / "o.jsonl", "--schema", path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path} field 'type': not a valid JSON Schema: 'objekt' is not valid under any of the "
                      "given schemas"], res.stderr
    assert not (tmp_path / "o.jsonl").exists()
    assert "--schema" in run_cli("generate", "--help").stdout


def test_schema_and_turns_are_refused_together(fake_llm, tmp_path, schema_file):
    """Later turns are answered as free text, so the schema would not hold for a conversation's output."""
    res = generate(tmp_path, schema_file, "--teacher", "openai:fake", "--base-url", fake_llm.url, "--turns", 2)
    assert res.returncode == 2 and "--schema covers single-turn records only" in res.stderr
    assert not fake_llm.seen and not (tmp_path / "out.jsonl").exists()


# -- the real llama.cpp teacher ----------------------------------------------------------------------

@pytest.mark.slow
def test_embedded_llama_cpp_outputs_validate(tmp_path, schema_file):
    res = generate(tmp_path, schema_file, n=2, env={})
    assert res.returncode == 0, res.stderr
    df = read_table(tmp_path / "out.jsonl")
    assert df.height == 2 and set(df["teacher"]) == {"local:smollm2-135m-instruct"}
    assert_outputs_valid(df)


@pytest.mark.slow
def test_llama_cpp_server_outputs_validate(llama_server, tmp_path, schema_file):
    """llama-cpp-python's server refuses json_schema (HTTP 500 naming json_object); its own form works."""
    res = generate(tmp_path, schema_file, "--teacher", "openai:smollm2", "--base-url", llama_server,
                   "--method", "evol-instruct", "--concurrency", 2, n=2, env={"OPENAI_API_KEY": ""})
    assert res.returncode == 0, res.stderr
    df = read_table(tmp_path / "out.jsonl")
    assert df.height == 2 and set(df["teacher"]) == {"openai:smollm2"}
    assert_outputs_valid(df)
