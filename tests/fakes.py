"""Local HTTP servers that speak the real OpenAI and Anthropic wire formats, for what no real server
here can do: inject faults (429 with Retry-After, 500, slow answers, malformed bodies), count every
request, and stand in for the Anthropic API (no network here).

Answers are a pure function of the request body, so two runs against it can be compared row by row.
They look like what the teacher prompts ask for: numbered task lists, Input/Output instances, and for
the curate judge "Score: N / Reason: ..." (`judge_score` says which N, or no score, each response gets).
A request under a JSON Schema (OpenAI `response_format` json_schema, Anthropic forced tool use) gets
a value valid against it (`example_for`), or, while `FaultPlan.bad_json` lasts, one that is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from aiohttp import web

WORDS = """account balance transfer card payment refund fee limit currency exchange rate pin login password
statement deposit withdrawal cash atm branch loan mortgage interest savings checking overdraft
dispute chargeback fraud alert freeze unlock verify identity address phone email app update
notification subscription merchant invoice receipt salary pension budget travel abroad contactless
virtual physical replacement delivery activation expiry cvv tax report receipt holiday crypto
stock dividend broker portfolio insurance claim premium beneficiary joint business personal student
""".split()
VERBS = "explain describe summarize list compare draft outline suggest classify rewrite".split()


def _rng(body: dict) -> random.Random:
    return random.Random(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest())


JUDGE_ASK = "Rate how good the response is"        # prompts/curate/judge.yaml
_JUDGED = re.compile(r"^Response: (.*?)\n+Answer in exactly two lines", re.S | re.M)
JUDGE_SCORES = (None, 1, 2, 4, 5)


def judge_score(output: str) -> int | None:
    """The fake judge's score for a response: a pure function of its text (so a test can predict
    every verdict from the table it curates); None for an answer that gives no score."""
    return JUDGE_SCORES[int(hashlib.sha256(output.strip().encode()).hexdigest(), 16) % len(JUDGE_SCORES)]


def judge_answer(prompt: str) -> str:
    """What the judge template asks for ("Score: N" then "Reason: ..."), or rambling prose with no score."""
    m = _JUDGED.search(prompt)
    score = judge_score(m.group(1) if m else "")
    if score is None:
        return "The response talks about the account but does not say how good it is."
    return f"Score: {score}\nReason: The response {'answers' if score >= 4 else 'misses'} the instruction."


def answer_for(prompt: str, rng: random.Random) -> str:
    """A plausible, well-formed answer to one of seedloop's prompts."""
    if JUDGE_ASK in prompt:
        return judge_answer(prompt)
    if "series of tasks" in prompt:
        return "\n".join(f"Task {i}: {rng.choice(VERBS).title()} the {' '.join(rng.sample(WORDS, 6))} "
                         f"for a customer." for i in range(9, 13))
    if "Yes or No" in prompt:
        return "No"
    if "classification task" in prompt or "Class label:" in prompt.splitlines()[-1:]:
        return f"Class label: {rng.choice(WORDS)}\nInput: {' '.join(rng.sample(WORDS, 8))}"
    if "Write only the user's next message" in prompt:     # prompts/conversation/user_turn.yaml
        return f"User: And how do I {rng.choice(VERBS)} the {' '.join(rng.sample(WORDS, 5))}?\nAssistant: Sure"
    if "example for each task" in prompt:
        return f"Input: none\nOutput: {' '.join(rng.sample(WORDS, 20)).capitalize()}."
    return " ".join(rng.sample(WORDS, 25)).capitalize() + "."


def example_for(schema: dict, rng: random.Random):
    """A value valid against a small JSON Schema: const, enum, object (every property), array, string,
    number, integer, boolean, null."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {name: example_for(sub, rng) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_for(schema.get("items", {}), rng) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind in ("integer", "number"):
        return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 100)))
    if kind == "boolean":
        return rng.random() < 0.5
    return None if kind == "null" else " ".join(rng.sample(WORDS, 3))


@dataclass
class FaultPlan:
    """What the server does to the next requests: a queue of faults, then normal answers."""
    faults: list[str] = field(default_factory=list)  # "429", "500", "slow", "malformed", "401"
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    latency: float = 0.0  # added to every normal answer
    bad_json: int = 0  # the next N answers under a JSON Schema fail it: OpenAI's cut-off JSON, Anthropic's {}
    rate_limit: float | None = None  # a hidden limit: at most this many requests in any 1 s, else 429


@dataclass
class Seen:
    body: dict
    outcome: str
    at: float


class FakeLLMServer:
    """An aiohttp server on 127.0.0.1 in a background thread. `url` is the OpenAI base URL;
    `anthropic_url` the Anthropic one."""

    def __init__(self, plan: FaultPlan | None = None):
        self.plan = plan or FaultPlan()
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._window: deque[float] = deque()   # arrivals let through by `plan.rate_limit` in the last second
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    # -- lifecycle -------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop():
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- accounting --------------------------------------------------------------
    def outcomes(self) -> Counter:
        return Counter(s.outcome for s in self.seen)

    def bodies(self, outcome: str = "ok") -> list[str]:
        return [json.dumps(s.body, sort_keys=True) for s in self.seen if s.outcome == outcome]

    def _bad_json(self) -> bool:
        """Whether this answer under a schema should fail it (FaultPlan.bad_json)."""
        with self._lock:
            if self.plan.bad_json > 0:
                self.plan.bad_json -= 1
                return True
        return False

    # -- handlers ------------------------------------------------------------------
    def _over_rate(self, now: float) -> float | None:
        """Seconds until the hidden rate limit lets one more request in (a sliding 1 s window, as APIs
        check requests per minute over short windows); None when it lets this one in."""
        if not self.plan.rate_limit:
            return None
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) < self.plan.rate_limit:
            self._window.append(now)
            return None
        return self._window[0] + 1.0 - now

    async def _fault(self, body: dict) -> web.Response | None:
        if (wait := self._over_rate(time.monotonic())) is not None:
            self.seen.append(Seen(body, "429", time.monotonic()))
            return web.json_response({"error": {"message": "rate limited", "type": "rate_limit_error"}},
                                     status=429, headers={"Retry-After": f"{wait:.3f}"})
        with self._lock:
            fault = self.plan.faults.pop(0) if self.plan.faults else None
        if fault is None:
            return None
        self.seen.append(Seen(body, fault, time.monotonic()))
        if fault == "429":
            return web.json_response({"error": {"message": "rate limited", "type": "rate_limit_error"}},
                                     status=429, headers={"Retry-After": str(self.plan.retry_after)})
        if fault == "500":
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        if fault == "401":
            return web.json_response({"error": {"message": "invalid api key", "type": "invalid_request_error"}},
                                     status=401)
        if fault == "malformed":
            return web.Response(text='{"choices": [', content_type="application/json")
        if fault == "slow":
            await asyncio.sleep(self.plan.slow_seconds)
            return web.json_response({"error": {"message": "too slow"}}, status=504)
        raise ValueError(fault)

    async def _enter(self):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.plan.latency:
            await asyncio.sleep(self.plan.latency)

    async def _openai(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (resp := await self._fault(body)) is not None:
            return resp
        await self._enter()
        try:
            prompt = "\n".join(m["content"] for m in body["messages"])
            text = answer_for(prompt, _rng(body))
            fmt = body.get("response_format") or {}
            if fmt.get("type") == "json_schema":
                text = '{"answer": ' if self._bad_json() else json.dumps(example_for(fmt["json_schema"]["schema"],
                                                                                      _rng(body)))
            self.seen.append(Seen(body, "ok", time.monotonic()))
            return web.json_response({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4,
                          "total_tokens": (len(prompt) + len(text)) // 4},
            })
        finally:
            self.in_flight -= 1

    async def _anthropic(self, request: web.Request) -> web.Response:
        # SDK 1.x sends x-api-key; SDK 2.x sends Authorization: Bearer; both send anthropic-version
        authed = request.headers.get("x-api-key") or request.headers.get("authorization", "").startswith("Bearer ")
        if not authed or not request.headers.get("anthropic-version"):
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "missing x-api-key"}}, status=401)
        body = await request.json()
        if (resp := await self._fault(body)) is not None:
            return resp
        await self._enter()
        try:
            assert "max_tokens" in body and isinstance(body["messages"], list)
            assert all(m["role"] in ("user", "assistant") for m in body["messages"]), "system goes in 'system'"
            prompt = "\n".join(m["content"] for m in body["messages"])
            text = answer_for(prompt, _rng(body))
            if body["messages"][-1]["role"] == "assistant":  # a prefill: continue after it
                text = text.split(":", 1)[1] if ":" in text else text
            content, stop = [{"type": "text", "text": text}], "end_turn"
            if (body.get("tool_choice") or {}).get("type") == "tool":   # forced tool use: its input is the answer
                tool = next(t for t in body["tools"] if t["name"] == body["tool_choice"]["name"])
                value = {} if self._bad_json() else example_for(tool["input_schema"], _rng(body))
                content = [{"type": "tool_use", "id": "toolu_fake", "name": tool["name"], "input": value}]
                stop = "tool_use"
            self.seen.append(Seen(body, "ok", time.monotonic()))
            return web.json_response({
                "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": len(prompt) // 4, "output_tokens": len(text) // 4},
            })
        finally:
            self.in_flight -= 1


def main() -> None:
    """`python -m tests.fakes --latency 0.25`: serve in the foreground (benchmarks run it apart from the client)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests in any 1 s; 429 beyond")
    args = parser.parse_args()
    server = FakeLLMServer(FaultPlan(latency=args.latency, rate_limit=args.rate_limit))
    print(server.url, flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
