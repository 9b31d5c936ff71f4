"""Anthropic's Messages API through the official SDK (ANTHROPIC_BASE_URL for a proxy or gateway).

A request with a JSON Schema becomes a forced tool call: one tool whose input schema is the schema
(wrapped as {"output": ...} when it is not an object, which tool inputs must be), and the answer is
the tool input as JSON text.
"""

from __future__ import annotations

import inspect
import json
import os

import anthropic
from anthropic.resources.messages import AsyncMessages

from seedloop.core.errors import ConfigError, TeacherError
from synth.teachers.base import (ChatRequest, Completion, Teacher, TransientError, parse_retry_after,
                                 timeout_message)


# Recent SDKs (2.x) dropped sampling parameters from messages.create (the newest models set their
# own); older ones take `temperature` (but refuse it together with top_p on recent models).
_TAKES_TEMPERATURE = "temperature" in inspect.signature(AsyncMessages.create).parameters


class AnthropicTeacher(Teacher):
    provider = "anthropic"
    honors_prefill = True  # a final assistant turn is continued by the Messages API

    def __init__(self, model: str, *, base_url: str | None = None, timeout: float = 120.0):
        key = os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigError("ANTHROPIC_API_KEY is not set: export it to use an anthropic: teacher")
        self.model = model
        self._client = anthropic.AsyncAnthropic(api_key=key, base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL"),
                                                max_retries=0, timeout=timeout,
                                                http_client=anthropic.DefaultAioHttpClient())
        self.endpoint = str(self._client.base_url).rstrip("/")   # the SDK's default when no base URL is given

    async def complete(self, request: ChatRequest) -> Completion:
        system = "\n\n".join(c for r, c in request.messages if r == "system")
        turns = [{"role": r, "content": c} for r, c in request.messages if r != "system"]
        if request.prefill:  # the API refuses a prefill that ends in whitespace
            turns[-1] = {"role": "assistant", "content": request.prefill.rstrip()}
        params = dict(model=self.model, max_tokens=request.max_tokens, messages=turns)
        if _TAKES_TEMPERATURE:
            params["temperature"] = request.temperature
        if system:
            params["system"] = system
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        if request.json_schema:
            tool, _ = _tool_schema(json.loads(request.json_schema))
            params["tools"] = [{"name": TOOL, "description": "Record the answer.", "input_schema": tool}]
            params["tool_choice"] = {"type": "tool", "name": TOOL}
        try:
            resp = await self._client.messages.create(**params)
        except anthropic.RateLimitError as exc:
            raise TransientError("HTTP 429 rate limited", parse_retry_after(exc.response.headers.get("retry-after"))) from None
        except anthropic.InternalServerError as exc:  # 5xx, including 529 overloaded
            raise TransientError(f"HTTP {exc.status_code} server error",
                                 parse_retry_after(exc.response.headers.get("retry-after"))) from None
        except anthropic.APITimeoutError as exc:
            raise TransientError(timeout_message(exc, self._client.base_url)) from None
        except anthropic.APIConnectionError:
            raise TransientError(f"cannot connect to {self._client.base_url}") from None
        except anthropic.APIStatusError as exc:
            if exc.status_code in (408, 409, 529):
                raise TransientError(f"HTTP {exc.status_code}") from None
            raise TeacherError(f"{self.spec} at {self._client.base_url}: HTTP {exc.status_code}: {exc.message}") from None
        except (json.JSONDecodeError, ValueError) as exc:
            raise TransientError(f"malformed response body ({exc.__class__.__name__})") from None
        if resp.content is None or resp.usage is None:
            raise TransientError("malformed response: no content or usage")
        text = "".join(getattr(b, "text", "") for b in resp.content if getattr(b, "type", "") == "text")
        if request.json_schema:
            text = _tool_answer(resp.content, json.loads(request.json_schema)) or text
        return Completion(text=text, input_tokens=resp.usage.input_tokens, output_tokens=resp.usage.output_tokens,
                          finish_reason="length" if resp.stop_reason == "max_tokens" else "stop")

    async def aclose(self) -> None:
        await self._client.close()


TOOL = "record_output"


def _tool_schema(schema: dict) -> tuple[dict, bool]:
    """(the tool's input schema, whether the schema was wrapped as {"output": schema})."""
    if schema.get("type") == "object":
        return schema, False
    defs = {k: schema[k] for k in ("$defs", "definitions") if k in schema}   # refs point at the top level
    inner = {k: v for k, v in schema.items() if k not in defs}
    return {"type": "object", "properties": {"output": inner}, "required": ["output"], **defs}, True


def _tool_answer(content: list, schema: dict) -> str:
    """The forced tool call's input as JSON text ('' when the model called no tool: its text is checked then)."""
    call = next((b for b in content if getattr(b, "type", "") == "tool_use"), None)
    if call is None:
        return ""
    value = call.input
    if _tool_schema(schema)[1] and isinstance(value, dict) and "output" in value:
        value = value["output"]
    return json.dumps(value, ensure_ascii=False)
