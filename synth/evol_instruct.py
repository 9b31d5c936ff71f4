"""Evol-Instruct (Xu et al., 2023, WizardLM), one evolution per slot.

A slot picks a parent (a seed, or a record evolved by an earlier slot) and one operation: four
in-depth ones (add a constraint, deepen, concretize, more reasoning steps) or in-breadth (a new,
rarer prompt of the same domain); asks the teacher to rewrite; answers the rewritten prompt.
The elimination step drops failed evolutions, as in the paper: no information gain over the parent,
words copied from the evolving prompt, a response that gives up ("sorry" in under 80 words) or is
only punctuation and stop words; plus the shared heuristics and the online near-duplicate check.
"""

from __future__ import annotations

import re

from prompts import load_template
from seedloop.core.heuristics import check_instruction, check_output
from seedloop.core.record import new_record
from seedloop.core.text import normalize, rouge_l
from synth import parse
from synth.engine import TeacherClient
from synth.scheduler import SlotContext, SlotResult
from synth.self_instruct import drop
from synth.structured import OutputSchema, SchemaAnswers
from synth.teachers.base import ChatRequest

IN_DEPTH = {
    "constraints": "Add one more constraint or requirement to it.",
    "deepen": "If it asks about a matter, ask about it in more depth and breadth.",
    "concretize": "Replace general concepts with more specific ones.",
    "reasoning": "If it can be solved with a few simple steps, make it ask for several steps of reasoning.",
}
OPERATIONS = (*IN_DEPTH, "breadth")
_LEAKED = re.compile(r"given prompt|rewritten prompt|created prompt|#\s*\w+\s*prompt\s*#|more complex version", re.I)
NO_GAIN_ROUGE = 0.9
EVOLVE_MAX_TOKENS = 200   # a rewritten prompt; the cost estimate (synth/estimate.py) reads it too


class EvolInstructGenerator:
    name = "evol-instruct"

    def __init__(self, client: TeacherClient, seeds: list[dict], *, temperature: float = 0.7,
                 max_tokens: int = 512, schema: OutputSchema | None = None):
        self.client, self.temperature, self.max_tokens = client, temperature, max_tokens
        # with a schema, the response is asked for under it (synth/structured.py)
        self.structured = schema and SchemaAnswers(client, schema, temperature=temperature, max_tokens=max_tokens)
        self.seeds = seeds
        self.t_depth = load_template("evol_instruct/in_depth")
        self.t_breadth = load_template("evol_instruct/in_breadth")
        self.t_respond = load_template("evol_instruct/respond")

    def known_texts(self) -> list[str]:
        return [s["instruction"] for s in self.seeds]

    async def __call__(self, ctx: SlotContext) -> SlotResult:
        rng = ctx.rng
        parent = rng.choice(self.seeds + ctx.view)
        op = rng.choice(OPERATIONS)
        evolve_seed, respond_seed = rng.randrange(2**31), rng.randrange(2**31)
        template = self.t_breadth if op == "breadth" else self.t_depth
        values = {"instruction": parent["instruction"]}
        if op != "breadth":
            values["method"] = IN_DEPTH[op]
        reply = await self.client.complete(ChatRequest.of(template.render(**values), max_tokens=EVOLVE_MAX_TOKENS,
                                                          temperature=self.temperature, seed=evolve_seed))
        evolved = parse.single_prompt(reply.text)
        result = SlotResult()
        reason = self._failed_evolution(parent["instruction"], evolved, reply.truncated)
        if reason:
            result.drops.append(drop(reason, evolved or reply.text, stage="evolution", operation=op,
                                     parent=parent["id"]))
            return result
        (adm,) = await ctx.admit([evolved])
        if not adm.accepted:
            result.drops.append(drop("near_duplicate", evolved, stage="evolution", operation=op,
                                     similar_to=adm.similar_to, similarity=adm.similarity))
            return result
        # in-breadth prompts are new tasks; the parent's input belongs to in-depth rewrites only
        inp = "" if op == "breadth" else parent.get("input") or ""
        output, failed = await self._respond(evolved, inp, respond_seed)
        if failed:
            result.drops.append({**failed, "stage": "response", "operation": op, "instruction": evolved})
            return result
        respond_ref = self.structured.ref if self.structured else self.t_respond.ref
        result.records.append(new_record(
            evolved, inp, output, source="generated", parents=[parent["id"]],
            teacher=self.client.spec, prompt=f"{template.ref}+{respond_ref}"))
        return result

    async def _respond(self, instruction: str, inp: str, seed: int) -> tuple[str | None, dict | None]:
        """(the response, None), or (None, the drop: reason, text and facts; the caller adds the stage)."""
        if self.structured:
            output, text, problem = await self.structured.answer(instruction, inp, seed)
            if problem is not None:
                return None, drop("schema_invalid", text, schema_error=problem)
            reason = check_output(instruction, output)
            return (None, drop(reason, output)) if reason else (output, None)
        answer = await self.client.complete(ChatRequest.of(
            self.t_respond.render(instruction=instruction, input=inp), max_tokens=self.max_tokens,
            temperature=self.temperature, seed=seed))
        reason = _failed_response(answer.text) or check_output(instruction, answer.text, truncated=answer.truncated)
        return (None, drop(reason, answer.text)) if reason else (answer.text.strip(), None)

    @staticmethod
    def _failed_evolution(parent: str, evolved: str, truncated: bool) -> str | None:
        if truncated:
            return "evolution_truncated"
        if _LEAKED.search(evolved):
            return "evolution_copied_prompt_words"
        if not evolved or normalize(evolved) == normalize(parent) or rouge_l(parent, evolved) >= NO_GAIN_ROUGE:
            return "evolution_no_gain"
        return check_instruction(evolved)


def _failed_response(text: str) -> str | None:
    words = text.split()
    if "sorry" in text.lower() and len(words) < 80:
        return "evolution_too_hard"
    return None
