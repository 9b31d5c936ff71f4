"""A trained specialist behind an OpenAI-compatible API (FastAPI): `/v1/chat/completions` and `/v1/models`.

Any OpenAI client can call it, seedloop's own teacher and judge included (`--teacher openai:NAME
--base-url http://HOST:PORT/v1`). A generator answers the conversation (greedy, or sampled when
`temperature` > 0) within `max_tokens` (or `max_completion_tokens`); a classifier answers with the
label of the last user turn, and `logprobs: true` adds the label's log-probability. Requests are
answered one at a time on the one model (a lock), so concurrent clients queue rather than fail.
Bad requests get OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_TOKENS = 256


class Message(BaseModel):
    role: str
    content: str | list[dict] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")   # the many options OpenAI clients send and we do not use

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    logprobs: bool = False
    seed: int | None = None


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


class Specialist:
    """The loaded model and how it answers one conversation."""

    def __init__(self, model_dir: str | Path, name: str | None = None):
        from train.classifier_model import is_classifier, load_classifier
        from train.inference import load_for_inference

        self.name = name or Path(str(model_dir)).name
        self.classifier = load_classifier(model_dir) if is_classifier(model_dir) else None
        self.model, self.tokenizer = (None, None) if self.classifier else load_for_inference(model_dir)
        self.lock = threading.Lock()

    def reply(self, req: ChatRequest) -> dict:
        messages = [{"role": m.role, "content": _text(m.content)} for m in req.messages]
        if messages[-1]["role"] != "user":
            raise ApiError(400, "the last message must be the user's", param="messages")
        with self.lock:
            return self._classify(messages, req) if self.classifier else self._generate(messages, req)

    def _classify(self, messages: list[dict], req: ChatRequest) -> dict:
        text = messages[-1]["content"]
        probs = self.classifier.predict_proba([text])[0]
        best = int(probs.argmax())
        label = self.classifier.labels[best]
        logprobs = {"content": [{"token": label, "logprob": math.log(max(float(probs[best]), 1e-45)), "bytes": None,
                                 "top_logprobs": []}]} if req.logprobs else None
        prompt_tokens = len(self.classifier.tokenizer(text)["input_ids"])
        return _choice(label, "stop", prompt_tokens, 1, logprobs)

    def _generate(self, messages: list[dict], req: ChatRequest) -> dict:
        from train.chat import render_prompt
        from train.inference import answer, sample_answers

        limit = req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS
        record = {"messages": messages}
        prompt = render_prompt(record, self.tokenizer)
        prompt_tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if req.temperature:
            text = sample_answers(self.model, self.tokenizer, [record], n=1, temperature=req.temperature,
                                  max_new_tokens=limit, seed=req.seed or 0)[0][0]
            used = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            return _choice(text, "length" if used >= limit else "stop", prompt_tokens, used, None)
        got = answer(self.model, self.tokenizer, [record], max_new_tokens=limit)[0]
        logprobs = {"content": [{"token": self.tokenizer.decode([t]), "logprob": lp, "bytes": None, "top_logprobs": []}
                                for t, lp in zip(got.token_ids, got.token_logprobs)]} if req.logprobs else None
        used = len(got.token_ids)
        return _choice(got.text, "length" if used >= limit else "stop", prompt_tokens, used, logprobs)


def _text(content) -> str:
    if isinstance(content, list):   # content parts: the text ones, joined
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return content or ""


def _choice(text: str, finish: str, prompt_tokens: int, completion_tokens: int, logprobs) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                         "logprobs": logprobs}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def make_app(model_dir: str | Path, *, name: str | None = None) -> FastAPI:
    """The FastAPI app serving `model_dir` (loaded now) under the model id `name` (default: the folder's name)."""
    specialist = Specialist(model_dir, name)
    created = int(time.time())
    app = FastAPI(title=f"seedloop: {specialist.name}")
    app.state.model_id = specialist.name

    @app.exception_handler(ApiError)
    def _api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if p != "body") or None
        return JSONResponse(ApiError(400, f"{param}: {first['msg']}" if param else first["msg"], param=param).body,
                            status_code=400)

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": specialist.name, "object": "model", "created": created,
                                            "owned_by": "seedloop"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict:   # a plain def: FastAPI runs it in its thread pool
        if req.model != specialist.name:
            raise ApiError(404, f"The model '{req.model}' does not exist; this server has '{specialist.name}'",
                           param="model", code="model_not_found")
        if req.stream:
            raise ApiError(400, "stream=true is not supported by this server", param="stream")
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": specialist.name, **specialist.reply(req)}

    return app
