"""The one interface every teacher speaks: an async chat completion with token usage."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs, hashable
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None  # passed where the API takes one; always part of the cache key
    json_schema: str | None = None  # the answer must be JSON valid against this schema (compact JSON text)

    @classmethod
    def of(cls, messages: list[dict], **params) -> "ChatRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), **params)

    def message_dicts(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]

    @property
    def prefill(self) -> str:
        """A final assistant message is a prefill: the start of the answer, which the teacher continues."""
        return self.messages[-1][1] if self.messages and self.messages[-1][0] == "assistant" else ""

    def without_prefill(self) -> list[dict]:
        msgs = self.message_dicts()
        return msgs[:-1] if self.prefill else msgs

    def canonical(self) -> dict:
        d = asdict(self)
        d["messages"] = self.message_dicts()
        d["stop"] = list(self.stop)
        if self.json_schema is None:   # left out, so requests without one keep the cache keys they had
            del d["json_schema"]
        return d

    def estimated_input_tokens(self) -> int:
        # about 4 characters a token for English, plus a few tokens of chat framing per message
        return sum(len(c) // 4 + 4 for _, c in self.messages)


def cache_key(provider: str, model: str, request: ChatRequest, endpoint: str = "") -> str:
    """The hash of everything that changes an answer: who answers (provider, model, and the server the
    requests go to) and what is asked (messages and every sampling parameter)."""
    payload = {"provider": provider, "model": model, **request.canonical()}
    if endpoint:   # in-process models have none; leaving it out keeps their keys as they were
        payload["endpoint"] = endpoint
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str = "stop"  # "stop" or "length" (cut at max_tokens)
    extra: dict = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class TransientError(Exception):
    """Worth retrying: rate limited (429), server error (5xx), timeout, dropped connection, bad body."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Teacher:
    """Subclasses set `provider`, `model` (and `endpoint` when they talk to a server) and implement `complete`.

    `honors_prefill`: whether a final assistant message is continued (the returned text then starts
    right after it) rather than answered afresh. Strategies parse both shapes.
    """

    provider: str = ""
    model: str = ""
    endpoint: str = ""   # the server's URL; part of the cache key, so two servers never share answers
    honors_prefill: bool = False

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}"

    async def complete(self, request: ChatRequest) -> Completion:  # pragma: no cover - interface
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def timeout_message(exc: BaseException, base_url) -> str:
    """The SDKs' aiohttp transport reports a refused connection as a connect *timeout*; say what happened."""
    if type(exc.__cause__).__name__ == "ConnectTimeout":
        return f"cannot connect to {base_url}"
    return "request timed out"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are rare for APIs)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        import datetime as dt

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
