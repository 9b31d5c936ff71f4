"""Anthropic's Messages API through the official SDK (ANTHROPIC_BASE_URL for a proxy or gateway)."""

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
        return Completion(text=text, input_tokens=resp.usage.input_tokens, output_tokens=resp.usage.output_tokens,
                          finish_reason="length" if resp.stop_reason == "max_tokens" else "stop")

    async def aclose(self) -> None:
        await self._client.close()
