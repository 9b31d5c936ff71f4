"""LLM judge: a 1-5 score and a one-sentence reason per row, through any teacher.

Requests go through `synth.TeacherClient`, so they share generation's request cache and ledger: a
re-run pays for nothing twice and `seedloop ledger` shows what judging cost. The rubric is the
template prompts/curate/judge.yaml. Small local models ramble, so the answer is parsed leniently
(see `parse_verdict`) and answers with no score are counted, never guessed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from prompts import load_template
from seedloop.core.errors import ConfigError
from synth import ChatRequest, Limits, PriceTable, RequestCache, Teacher, TeacherClient, make_teacher

TEMPLATE = "curate/judge"
PREFILL = "Score:"
MAX_TOKENS = 60      # "Score: N" and one sentence; small models ramble past it
_NUM = r"([1-5](?:\.\d+)?)(?![\d%])"          # 4, 4.5; not 45 or 40%
_SCORE = re.compile(r"(?:score|rating)\W{0,4}" + _NUM, re.I)
_FRACTION = re.compile(r"(?<![\d.])" + _NUM + r"\s*(?:/|out of)\s*5\b", re.I)
_LEADING = re.compile(r"^\W*" + _NUM)
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_WORD = re.compile(r"(?:score|rating)\W{0,4}(one|two|three|four|five)\b", re.I)
_LEAD_SCORE = re.compile(r"^\W*(?:score|rating)?\W*(?:\d+(?:\.\d+)?%?|one|two|three|four|five)?"
                         r"(?:\s*(?:/|out of)\s*5)?\W*", re.I)
_REASON = re.compile(r"reason\W{0,3}(.+)", re.I)


@dataclass
class Verdicts:
    scores: list[float | None]
    reasons: list[str | None]
    unparseable: int = 0
    skipped: int = 0                    # rows with no output to judge
    template: str = ""
    teacher: str = ""
    stats: dict = field(default_factory=dict)


def parse_verdict(text: str) -> tuple[float | None, str | None]:
    """(score 1-5 or None, reason) from an answer such as 'Score: 4\\nReason: ...', '4/5 because ...'."""
    text = (text or "").strip()
    score = None
    for pattern in (_SCORE, _FRACTION, _LEADING):
        m = pattern.search(text)
        if m and 1 <= float(m.group(1)) <= 5:
            score = round(float(m.group(1)), 2)
            break
    if score is None and (m := _WORD.search(text)):
        score = float(_WORDS[m.group(1).lower()])
    m = _REASON.search(text)
    reason = m.group(1) if m else _LEAD_SCORE.sub("", text)
    reason = re.split(r"(?<=[.!?])\s|\n", reason.strip(), maxsplit=1)[0].strip()[:300]
    return score, reason or None


def judge_request(row: dict, *, prefill: bool) -> ChatRequest:
    messages = load_template(TEMPLATE).render(instruction=row.get("instruction") or "",
                                              input=row.get("input") or "", output=row.get("output") or "")
    if prefill:
        messages.append({"role": "assistant", "content": PREFILL})
    # temperature 0 and a fixed seed: the same row gets the same verdict, and the cache can serve it
    return ChatRequest.of(messages, max_tokens=MAX_TOKENS, temperature=0.0, seed=0)


async def judge_async(rows: Sequence[dict], client: TeacherClient,
                      progress: Callable[[int, int], None] | None = None) -> Verdicts:
    prefill = client.teacher.honors_prefill
    todo = [i for i, r in enumerate(rows) if (r.get("output") or "").strip()]
    out = Verdicts([None] * len(rows), [None] * len(rows), skipped=len(rows) - len(todo),
                   template=load_template(TEMPLATE).ref, teacher=client.spec)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        answer = await client.complete(judge_request(rows[i], prefill=prefill))
        score, reason = parse_verdict((PREFILL if prefill else "") + answer.text)
        if score is None:   # keep the raw answer: a reviewer can see what the judge said
            reason = f"no score in the judge's answer: {answer.text.strip()[:200]!r}"
        out.scores[i], out.reasons[i] = score, reason
        out.unparseable += score is None
        done += 1
        if progress:
            progress(done, len(todo))

    await asyncio.gather(*(one(i) for i in todo))
    s = client.stats
    out.stats = {"sent": s.sent, "cached": s.cached, "retries": s.retries, "input_tokens": s.input_tokens,
                 "output_tokens": s.output_tokens, "cost": s.cost}
    return out


def judge_rows(rows: Sequence[dict], *, teacher: str | Teacher, cache: str | Path, job: str,
               base_url: str | None = None, limits: Limits | None = None, prices: str | Path | None = None,
               max_cost: float | None = None, progress: Callable[[int, int], None] | None = None) -> Verdicts:
    """Synchronous entry point: builds the teacher (from a spec, unless given one), cache and client as
    generation does, judges, and closes the teacher."""
    if not teacher:
        raise ConfigError("--judge needs a teacher spec, e.g. local or openai:gpt-4o-mini")
    price_table = PriceTable.load(prices)
    teacher_obj = make_teacher(teacher, base_url=base_url) if isinstance(teacher, str) else teacher
    store = RequestCache(cache)

    async def main() -> Verdicts:
        client = TeacherClient(teacher_obj, store, limits=limits, prices=price_table, max_cost=max_cost, job=job)
        try:
            return await judge_async(rows, client, progress)
        finally:
            await teacher_obj.aclose()

    try:
        return asyncio.run(main())
    finally:
        store.close()
