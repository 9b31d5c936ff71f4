"""OpenAI, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp) through a base URL.

A request with a JSON Schema goes out with `response_format` of type json_schema (strict when the
schema meets OpenAI's strict rules). llama-cpp-python's server knows only its own form,
`{"type": "json_object", "schema": ...}` (it builds a grammar from it): when a server refuses
json_schema and names json_object, this teacher sends that form from then on.
"""

from __future__ import annotations

import json
import os

import openai

from seedloop.core.errors import ConfigError, TeacherError
from synth.teachers.base import (ChatRequest, Completion, Teacher, TransientError, parse_retry_after,
                                 timeout_message)


class OpenAITeacher(Teacher):
    provider = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, timeout: float = 120.0):
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            if not base_url:
                raise ConfigError("OPENAI_API_KEY is not set: export it, or point OPENAI_BASE_URL "
                                  "(--base-url) at an OpenAI-compatible server")
            key = "unused"  # local servers ignore the key, but the SDK wants a string
        self.model = model
        self.base_url = base_url
        # retries are ours (they honour Retry-After and are counted), so the SDK's are off; the aiohttp
        # transport spends less CPU per request than httpx's pool (measured: 190 vs 140 requests/s at
        # 64 in flight on 2 cores, see benchmarks/generate_throughput.py)
        self._client = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout,
                                          http_client=openai.DefaultAioHttpClient())
        self.endpoint = str(self._client.base_url).rstrip("/")   # the SDK's default when no base URL is given
        self._json_object_only = False   # set once a server has refused json_schema (see the docstring)

    async def complete(self, request: ChatRequest) -> Completion:
        params = dict(model=self.model, messages=_fold_prefill(request), max_tokens=request.max_tokens,
                      temperature=request.temperature, top_p=request.top_p)
        if request.stop:
            params["stop"] = list(request.stop)
        if request.seed is not None:
            params["seed"] = request.seed
        try:
            resp = await self._create(params, request.json_schema)
        except openai.RateLimitError as exc:
            raise TransientError("HTTP 429 rate limited", parse_retry_after(exc.response.headers.get("retry-after"))) from None
        except openai.InternalServerError as exc:
            raise TransientError(f"HTTP {exc.status_code} server error",
                                 parse_retry_after(exc.response.headers.get("retry-after"))) from None
        except openai.APITimeoutError as exc:
            raise TransientError(timeout_message(exc, self._client.base_url)) from None
        except openai.APIConnectionError:
            raise TransientError(f"cannot connect to {self._client.base_url}") from None
        except openai.APIStatusError as exc:
            if exc.status_code in (408, 409):
                raise TransientError(f"HTTP {exc.status_code}") from None
            raise TeacherError(f"{self.spec} at {self._client.base_url}: HTTP {exc.status_code}: "
                               f"{_message(exc)}") from None
        except (json.JSONDecodeError, ValueError) as exc:
            raise TransientError(f"malformed response body ({exc.__class__.__name__})") from None
        if not resp.choices or resp.choices[0].message is None:
            raise TransientError("malformed response: no choices")
        choice = resp.choices[0]
        usage = resp.usage
        return Completion(
            text=choice.message.content or "",
            input_tokens=usage.prompt_tokens if usage else request.estimated_input_tokens(),
            output_tokens=usage.completion_tokens if usage else 0,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
        )

    async def _create(self, params: dict, json_schema: str | None):
        if json_schema is None:
            return await self._client.chat.completions.create(**params)
        schema = json.loads(json_schema)
        if not self._json_object_only:
            try:
                return await self._client.chat.completions.create(**params, response_format=_json_schema_format(schema))
            except openai.APIStatusError as exc:
                # llama-cpp-python answers 500 with its validation error: "Input should be 'text' or 'json_object'"
                if not ("json_schema" in _message(exc) and "json_object" in _message(exc)):
                    raise
                self._json_object_only = True
        return await self._client.chat.completions.create(
            **params, response_format={"type": "json_object", "schema": schema})

    async def aclose(self) -> None:
        await self._client.close()


def _json_schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": _strict_ok(schema)}}


def _strict_ok(schema) -> bool:
    """Whether OpenAI's strict mode takes the schema: an object at the top, and every object with
    additionalProperties false and all its properties required (else the API refuses strict)."""
    def objects_ok(node) -> bool:
        if isinstance(node, list):
            return all(objects_ok(v) for v in node)
        if not isinstance(node, dict):
            return True
        if node.get("type") == "object" or isinstance(node.get("properties"), dict):
            props = node.get("properties") or {}
            if node.get("additionalProperties") is not False or set(node.get("required", [])) != set(props):
                return False
        return all(objects_ok(v) for k, v in node.items() if k not in ("enum", "const", "default", "examples"))

    return isinstance(schema, dict) and schema.get("type") == "object" and objects_ok(schema)


def _fold_prefill(request: ChatRequest) -> list[dict]:
    """The chat API cannot continue a partial answer, so the prefill becomes part of the last question."""
    msgs = request.without_prefill()
    if request.prefill and msgs and msgs[-1]["role"] == "user":
        msgs[-1] = {"role": "user", "content": f"{msgs[-1]['content']}\n\nContinue this text where it stops:\n\n{request.prefill}"}
    return msgs


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body)
    return (err.get("message") if isinstance(err, dict) else None) or str(exc.message)[:200]
