"""Self-Instruct (Wang et al., 2023), one slot at a time.

A slot: show the teacher 8 tasks (6 seeds, 2 generated ones when there are any), ask it to continue
the list; keep the new tasks that pass the heuristics and are not ROUGE-L-close (> 0.7) to any task
so far; then write an instance for each. Classification tasks (decided by a keyword rule when it is
obvious, else by asking the teacher, as in the paper) get output-first instances: the label is
chosen before the input, so labels are not skewed to the one the teacher finds easiest.

`classify`: "teacher" asks the teacher when the rule is silent (the paper); "rule" never asks
(measured: the packaged 135M teacher called 30% of plainly open-ended tasks classification);
"auto" is "rule" for local teachers and "teacher" for API ones.
"""

from __future__ import annotations

import asyncio
import re

from prompts import load_template
from seedloop.core.errors import BudgetExceeded, ConfigError
from seedloop.core.heuristics import check_instruction, check_output
from seedloop.core.record import new_record
from synth import parse
from synth.engine import TeacherClient
from synth.scheduler import SlotContext, SlotResult
from synth.structured import OutputSchema, SchemaAnswers
from synth.teachers.base import ChatRequest

CLASSIFICATION_RULE = re.compile(
    r"\b(classify|classification|categori[sz]e|label the|which (one )?of (these|the following)|"
    r"one of (these|the following)|true or false|answer yes or no|answer (with )?(yes|true))\b", re.I)


CLASSIFY_MODES = ("auto", "rule", "teacher")


def drop(reason: str, text: str, **extra) -> dict:
    return {"reason": reason, "text": text, **extra}


class SelfInstructGenerator:
    name = "self-instruct"

    def __init__(self, client: TeacherClient, seeds: list[dict], *, per_request: int = 8,
                 seed_examples: int = 6, generated_examples: int = 2, instance_examples: int = 2,
                 temperature: float = 0.7, max_tokens: int = 384, classify: str = "auto",
                 schema: OutputSchema | None = None):
        if classify not in CLASSIFY_MODES:
            raise ConfigError(f"classify must be one of {', '.join(CLASSIFY_MODES)}, got '{classify}'")
        if classify == "auto":  # small local teachers misjudge this question; API models answer it well
            classify = "rule" if client.teacher.provider == "local" else "teacher"
        self.classify = classify
        self.client = client
        self.per_request, self.n_seed, self.n_gen = per_request, seed_examples, generated_examples
        self.n_inst, self.temperature, self.max_tokens = instance_examples, temperature, max_tokens
        self.tasks = _unique_tasks(seeds)
        with_output = [s for s in seeds if s.get("output")]
        self.class_examples = [s for s in with_output if CLASSIFICATION_RULE.search(s["instruction"])]
        self.plain_examples = [s for s in with_output if not CLASSIFICATION_RULE.search(s["instruction"])]
        self.t_tasks = load_template("self_instruct/instructions")
        self.t_is_class = load_template("self_instruct/is_classification")
        self.t_inst = load_template("self_instruct/instances")
        self.t_inst_class = load_template("self_instruct/instances_classification")
        # with a schema, the instance stage gives the inputs and the outputs are asked for apart (synth/structured.py)
        self.structured = schema and SchemaAnswers(client, schema, temperature=temperature, max_tokens=max_tokens)

    def known_texts(self) -> list[str]:
        return [t for t, _ in self.tasks]

    async def __call__(self, ctx: SlotContext) -> SlotResult:
        rng = ctx.rng
        generated = _unique_tasks(ctx.view)
        shown = rng.sample(self.tasks, min(self.n_seed, len(self.tasks)))
        shown += rng.sample(generated, min(self.n_gen, len(generated)))
        rng.shuffle(shown)
        n = len(shown)
        request = ChatRequest.of(self.t_tasks.render(examples=[t for t, _ in shown], count=self.per_request),
                                 max_tokens=self.max_tokens, temperature=self.temperature,
                                 stop=(f"Task {n + self.per_request + 1}:",), seed=ctx.request_seed())
        reply = await self.client.complete(request)
        text = f"Task {n + 1}:{reply.text}" if self.client.teacher.honors_prefill else reply.text
        items = parse.task_list(text)[: self.per_request]
        if reply.truncated and items:
            items = items[:-1]  # the last one may be cut mid-sentence
        result = SlotResult()
        if not items:
            result.drops.append(drop("unparseable_tasks", reply.text, stage="instruction"))
        candidates = []
        for item in items:
            reason = check_instruction(item)
            if reason:
                result.drops.append(drop(reason, item, stage="instruction"))
            else:
                candidates.append(item)
        parents = [pid for _, pid in shown]
        kept = []
        for adm in await ctx.admit(candidates):
            if adm.accepted:
                kept.append(adm.text)
            else:
                result.drops.append(drop("near_duplicate", adm.text, stage="instruction",
                                         similar_to=adm.similar_to, similarity=adm.similarity))
        # draw every random choice before going concurrent, so the run stays deterministic
        plans = [(ins, rng.randrange(2**31), _sample(rng, self.class_examples, self.n_inst),
                  _sample(rng, self.plain_examples, self.n_inst)) for ins in kept]
        outcomes = await asyncio.gather(*(self._instances(*plan, parents) for plan in plans), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BudgetExceeded):
                result.budget = str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result.records += outcome[0]
                result.drops += outcome[1]
        return result

    async def _is_classification(self, instruction: str) -> bool:
        if CLASSIFICATION_RULE.search(instruction):
            return True
        if self.classify == "rule":
            return False
        reply = await self.client.complete(ChatRequest.of(self.t_is_class.render(instruction=instruction),
                                                          max_tokens=3, temperature=0.0))
        return bool(parse.yes_no(reply.text))

    async def _instances(self, instruction: str, seed: int, class_examples: list[dict],
                         plain_examples: list[dict], parents: list[str]):
        is_class = await self._is_classification(instruction)
        examples = (class_examples if is_class else plain_examples) or class_examples or plain_examples
        template = self.t_inst_class if is_class else self.t_inst
        request = ChatRequest.of(template.render(examples=examples, instruction=instruction),
                                 max_tokens=self.max_tokens, temperature=self.temperature,
                                 stop=("\nTask:",), seed=seed)
        reply = await self.client.complete(request)
        head = "Class label:" if is_class else "Input:"
        text = head + reply.text if self.client.teacher.honors_prefill else reply.text
        if is_class:
            pairs = [(inp, label) for label, inp in parse.label_inputs(text)]
        else:
            io = parse.input_output(text)
            pairs = [io] if io else []
        if not pairs:
            return [], [drop("unparseable_instance", reply.text, stage="instance", instruction=instruction)]
        records, drops = [], []
        if self.structured:
            pairs, drops = await self.structured.outputs(instruction, [inp for inp, _ in pairs], seed, stage="instance")
        refs = f"{self.t_tasks.ref}+{template.ref}" + (f"+{self.structured.ref}" if self.structured else "")
        lineage = parents + [e["id"] for e in examples]
        for inp, out in pairs:
            reason = check_output(instruction, out, truncated=reply.truncated)
            if reason:
                drops.append(drop(reason, out, stage="instance", instruction=instruction, input=inp))
                continue
            records.append(new_record(instruction, inp, out, source="generated", parents=lineage,
                                      teacher=self.client.spec, prompt=refs))
        return records, drops


def _sample(rng, pool: list, k: int) -> list:
    return rng.sample(pool, min(k, len(pool)))


def _unique_tasks(records: list[dict]) -> list[tuple[str, str]]:
    """(instruction, id of its first record), first occurrence order."""
    seen: dict[str, str] = {}
    for r in records:
        seen.setdefault(r["instruction"], r["id"])
    return list(seen.items())
