"""Multi-turn generation (`generate --turns N`): a method's single-turn records grown into conversations.

Inside each slot, after the method (Self-Instruct, Evol-Instruct) has made its records, every record's
(instruction, output) becomes the first exchange of a conversation. For each further turn the teacher
first writes the user's next message (prompts/conversation/user_turn: shown whole seed conversations,
so the user keeps the seeds' domain and persona), then answers it as the assistant, given the whole
conversation as chat messages. A turn that fails the shared quality rules drops its conversation, with
the reason and stage `turn`, so every written conversation has exactly N user turns.

Novelty looks at whole conversations: in slot order, a conversation ROUGE-L-close to one admitted
before it (or to a seed conversation) is dropped as `near_duplicate_conversation`. Chat and ShareGPT
seeds are shown with all their turns.

Records: `messages` holds every turn; `instruction` is the last user message and `output` the last
answer, as for chat seeds (synth/seeds.py). Training learns every assistant turn (train/chat.py).
"""

from __future__ import annotations

import asyncio
import re

from prompts import load_template
from seedloop.core.errors import BudgetExceeded
from seedloop.core.heuristics import check_instruction, check_output
from seedloop.core.record import new_record, record_messages
from synth.engine import TeacherClient
from synth.scheduler import SlotContext, SlotResult
from synth.teachers.base import ChatRequest

EXAMPLES = 2   # seed conversations shown per user-turn request
_SPEAKER = re.compile(r"^\s*(user|assistant)\s*:\s*", re.I)
_NEXT_SPEAKER = re.compile(r"\n\s*(user|assistant)\s*:", re.I)


def conversation_text(messages: list[dict]) -> str:
    """What the novelty check compares: every user and assistant turn, in order."""
    return "\n".join(m["content"] for m in messages if m["role"] in ("user", "assistant"))


class MultiTurnGenerator:
    """Wraps a method's slot function; its records come out as conversations of `turns` user turns."""

    def __init__(self, inner, client: TeacherClient, seeds: list[dict], *, turns: int, temperature: float = 0.7,
                 max_tokens: int = 384):
        self.inner, self.client, self.turns = inner, client, turns
        self.temperature, self.max_tokens = temperature, max_tokens
        self.examples = [(s["id"], record_messages(s)) for s in seeds if s.get("output") or s.get("messages")]
        self.t_user = load_template("conversation/user_turn")
        self.name = f"{inner.name}+turns"

    def known_texts(self) -> list[str]:
        return self.inner.known_texts()

    def lanes(self) -> dict[str, list[str]]:
        return {"conversation": [conversation_text(m) for _, m in self.examples]}

    async def __call__(self, ctx: SlotContext) -> SlotResult:
        result = await self.inner(ctx)
        rng = ctx.rng
        # every random choice before going concurrent, so the run stays deterministic
        plans = [(rec, [ctx.request_seed() for _ in range(2 * (self.turns - 1))],
                  rng.sample(self.examples, min(EXAMPLES, len(self.examples)))) for rec in result.records]
        outcomes = await asyncio.gather(*(self._extend(*plan) for plan in plans), return_exceptions=True)
        grown = []
        for outcome in outcomes:
            if isinstance(outcome, BudgetExceeded):
                result.budget = str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            elif isinstance(outcome, dict) and "reason" in outcome:
                result.drops.append(outcome)
            else:
                grown.append(outcome)
        result.records = []
        for rec, adm in zip(grown, await ctx.admit([conversation_text(r["messages"]) for r in grown],
                                                   lane="conversation")):
            if adm.accepted:
                result.records.append(rec)
            else:
                result.drops.append({"reason": "near_duplicate_conversation", "text": rec["instruction"],
                                     "stage": "turn", "similar_to": adm.similar_to, "similarity": adm.similarity})
        return result

    async def _extend(self, record: dict, seeds: list[int], examples: list[tuple[str, list[dict]]]) -> dict:
        """The record as a conversation of `turns` user turns, or a drop (a dict with `reason`)."""
        messages = record_messages(record)
        shown = [m for _, m in examples]
        for turn in range(self.turns - 1):
            reply = await self.client.complete(ChatRequest.of(
                self.t_user.render(examples=shown, conversation=messages), max_tokens=self.max_tokens,
                temperature=self.temperature, stop=("\nAssistant:",), seed=seeds[2 * turn]))
            user = user_message(reply.text)
            reason = check_instruction(user) or ("truncated_user_turn" if reply.truncated else None)
            if reason:
                return {"reason": reason, "text": user or reply.text, "stage": "turn"}
            messages.append({"role": "user", "content": user})
            reply = await self.client.complete(ChatRequest.of(messages, max_tokens=self.max_tokens,
                                                              temperature=self.temperature, seed=seeds[2 * turn + 1]))
            reason = check_output(user, reply.text, truncated=reply.truncated)
            if reason:
                return {"reason": reason, "text": reply.text, "stage": "turn", "instruction": user}
            messages.append({"role": "assistant", "content": reply.text.strip()})
        return new_record(messages[-2]["content"], "", messages[-1]["content"], messages=messages,
                          source="generated", parents=(record.get("parents") or []) + [i for i, _ in examples],
                          teacher=self.client.spec, prompt=f"{record.get('prompt')}+{self.t_user.ref}")


def user_message(text: str) -> str:
    """The user's message from a reply: a leading 'User:' removed, cut where another speaker begins."""
    text = _SPEAKER.sub("", text.strip(), count=1)
    return _NEXT_SPEAKER.split(text, maxsplit=1)[0].strip().strip('"').strip()
