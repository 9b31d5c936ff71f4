"""`seedloop serve`: a real server process, called with the official `openai` client: a classifier's
labels (known: the task is separable), concurrent requests, OpenAI-style errors, and a generator whose
answer matches plain unbatched `model.generate`."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from seedloop.core.record import new_record
from tests.conftest import free_port
from tests.train.test_classifier import WORDS, tiny_encoder  # noqa: F401 (fixture)
from tests.train.test_predict import _plain_greedy, classifier  # noqa: F401 (fixture)


def _serve(model, *extra: str):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seedloop", "serve", "--model", str(model), "--port", str(port),
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stderr.read()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).raise_for_status()
            return proc, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("serve did not answer within 180 s")


@pytest.fixture(scope="module")
def served(classifier):  # noqa: F811 (the fixture imported above)
    proc, url = _serve(classifier, "--name", "topics")
    yield openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    proc.terminate()
    proc.wait(timeout=30)


def _ask(client, text: str, **extra):
    return client.chat.completions.create(model="topics", messages=[{"role": "user", "content": text}], **extra)


def test_models_and_labels_of_unseen_messages(served):
    assert [m.id for m in served.models.list().data] == ["topics"]
    reply = _ask(served, "message 77 is about the truck", logprobs=True)
    assert reply.choices[0].message.content == "vehicle" and reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 3 and reply.usage.completion_tokens == 1
    assert 1 / 3 < math.exp(reply.choices[0].logprobs.content[0].logprob) <= 1.0


def test_concurrent_requests_each_get_their_own_answer(served):
    asks = [(label, f"message {90 + i} is about the {WORDS[label][i % 3]}")
            for i in range(6) for label in WORDS]                        # 18 requests, 8 at a time
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda ask: _ask(served, ask[1]).choices[0].message.content, asks))
    assert replies == [label for label, _ in asks]


def test_bad_requests_get_openai_error_bodies(served):
    with pytest.raises(openai.NotFoundError) as missing:
        served.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    with pytest.raises(openai.BadRequestError) as empty:
        served.chat.completions.create(model="topics", messages=[])
    assert empty.value.param == "messages" and empty.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as streamed:
        _ask(served, "the car", stream=True)
    assert streamed.value.param == "stream"
    raw = httpx.post(f"{served.base_url}chat/completions", content=b"{not json", timeout=10,
                     headers={"content-type": "application/json"})
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    assert _ask(served, "the drill").choices[0].message.content == "tool"  # still serving


def test_generator_answers_like_plain_generate():
    from train.inference import load_for_inference

    proc, url = _serve("local", "--name", "student")
    try:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="student", max_tokens=6,
                                               messages=[{"role": "user", "content": "Name a colour."}])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    model, tokenizer = load_for_inference("local")
    text, _ = _plain_greedy(model, tokenizer, new_record("Name a colour.", ""), 6)
    assert reply.choices[0].message.content == text and text
    assert reply.usage.completion_tokens <= 6
    assert reply.choices[0].finish_reason == ("length" if reply.usage.completion_tokens == 6 else "stop")


@pytest.mark.slow
def test_seedloops_own_teacher_generates_through_it(tmp_path):
    from seedloop.core.tables import read_table
    from tests.conftest import EXAMPLE_SEEDS, run_cli

    proc, url = _serve("local", "--name", "student")
    try:
        res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", 2, "--out", tmp_path / "out.jsonl", "--teacher",
                      "openai:student", "--base-url", url, "--concurrency", 2, "--cache", tmp_path / "c.sqlite",
                      env={"OPENAI_API_KEY": ""})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert res.returncode == 0, res.stderr[-3000:]
    df = read_table(tmp_path / "out.jsonl")
    assert len(df) == 2 and set(df["teacher"]) == {"openai:student"} and all(o.strip() for o in df["output"])
