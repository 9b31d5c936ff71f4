"""What a `generate` run would use, told before it runs: requests, prompt and completion tokens, dollars, low to high.

Requests are the records asked for divided by the yield, the records kept per request. The yield is
measured where the request cache has earlier runs of the same method, teacher and turns (the latest
run of each job, synth/cache.py `runs`): from the lowest of them to the highest, or 20% either side of
a single one. With nothing measured it is 30% to 100% of the best case of a slot (every task a
Self-Instruct request asks for kept and answered once, every Evol-Instruct evolution kept).

Prompt tokens are not guessed: the first SAMPLE_SLOTS slots' requests are rendered from the seeds with
the method's own templates and counted as the engine counts them for --max-cost and --tpm (about 4
characters a token). Only what the teacher has not written yet is stood in for by seeds: the tasks
Self-Instruct asks instances for, the generated tasks later slots show, the rewritten prompt that
Evol-Instruct answers, the turns of a conversation. Completion tokens run from the measured mean output
per request on the fewest requests (DEFAULT_OUTPUT_SHARE of max_tokens when nothing is measured) to
max_tokens on every request of the most.

Not handled: `--schema` (structured answers ask in other words), and a re-run's requests already in the
cache, which cost nothing but are counted.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from seedloop.core.errors import ConfigError
from seedloop.core.record import record_messages
from synth.cache import RequestCache, RunRow
from synth.conversations import EXAMPLES, MultiTurnGenerator
from synth.evol_instruct import EVOLVE_MAX_TOKENS, IN_DEPTH, OPERATIONS, EvolInstructGenerator
from synth.prices import PriceTable
from synth.self_instruct import CLASSIFICATION_RULE, SelfInstructGenerator
from synth.teachers.base import ChatRequest

SAMPLE_SLOTS = 24                # slots whose prompts are rendered: a steady mean, still instant
DEFAULT_YIELD_SHARE = (0.3, 1.0)  # of the best case, when no earlier run measured the yield
SINGLE_RUN_SPREAD = 0.2          # around the yield of the only measured run
DEFAULT_OUTPUT_SHARE = 0.25      # of max_tokens, the low completion figure when nothing is measured
IS_CLASS_MAX_TOKENS = 3          # Self-Instruct's yes/no question (synth/self_instruct.py)
LOCAL_DEFAULT_SPEC = "local:smollm2-135m-instruct"   # what the teacher `local` calls itself


@dataclass(frozen=True)
class Estimate:
    requests_low: int
    requests_high: int
    prompt_tokens_low: int
    prompt_tokens_high: int
    completion_tokens_low: int
    completion_tokens_high: int
    dollars_low: float | None     # None: no price for the teacher
    dollars_high: float | None
    basis: str                    # where the figures come from
    teacher: str = ""
    notes: tuple[str, ...] = ()   # $0 for a local teacher, no price, --max-cost below the estimate

    @property
    def paid(self) -> bool:
        return bool(self.dollars_high)


@dataclass(frozen=True)
class SlotShape:
    """The requests of SAMPLE_SLOTS slots in their best case, and the records they would make."""
    requests: tuple[ChatRequest, ...]
    records: int

    @property
    def prompt_tokens(self) -> float:
        return sum(r.estimated_input_tokens() for r in self.requests) / len(self.requests)

    @property
    def max_tokens(self) -> float:
        return sum(r.max_tokens for r in self.requests) / len(self.requests)

    @property
    def best_yield(self) -> float:
        return self.records / len(self.requests)


def teacher_spec(spec: str) -> str:
    """The spec a teacher built from `spec` calls itself, without building it (a local one loads a model)."""
    provider, _, rest = (spec or "local").partition(":")
    if provider != "local":
        return spec
    return f"local:{Path(rest).expanduser().resolve()}" if rest else LOCAL_DEFAULT_SPEC


def estimate_run(seeds: pl.DataFrame | list[dict], method: str, n: int, teacher: str, prices: PriceTable,
                 cache: RequestCache | None = None, *, classify: str = "auto", seed: int = 0, window: int = 8,
                 turns: int = 1, max_cost: float | None = None) -> Estimate:
    """The estimate for `generate --n n` (`teacher` as given on the command line); sends nothing."""
    seeds = seeds.to_dicts() if isinstance(seeds, pl.DataFrame) else list(seeds)
    spec = teacher_spec(teacher)
    shape = slot_shape(seeds, method, spec.partition(":")[0], classify=classify, seed=seed, window=window,
                       turns=turns)
    runs = cache.runs(method, spec, turns) if cache is not None else []
    (y_low, y_high), yield_basis = yield_range(runs, shape.best_yield)
    out_mean, out_basis = output_mean(runs, shape.max_tokens)
    requests = (math.ceil(n / y_high), math.ceil(n / y_low))
    prompt = (round(requests[0] * shape.prompt_tokens), round(requests[1] * shape.prompt_tokens))
    completion = (round(requests[0] * out_mean), round(requests[1] * shape.max_tokens))
    dollars, notes = price_notes(spec, prices, prompt, completion, max_cost)
    basis = (f"{yield_basis}; {out_basis}; prompts of {len(shape.requests)} requests of the first "
             f"{SAMPLE_SLOTS} slots, {shape.prompt_tokens:.0f} tokens each on average")
    return Estimate(*requests, *prompt, *completion, *(dollars or (None, None)), basis=basis, teacher=spec,
                    notes=notes)


def yield_range(runs: list[RunRow], best: float) -> tuple[tuple[float, float], str]:
    """(low, high) records per request, and where they come from."""
    measured = [r.records / r.requests for r in runs if r.records and r.requests]
    if not measured:
        low, high = (share * best for share in DEFAULT_YIELD_SHARE)
        return (low, high), (f"nothing measured in the cache: {low:.2f}-{high:.2f} records per request "
                             f"({DEFAULT_YIELD_SHARE[0]:.0%}-{DEFAULT_YIELD_SHARE[1]:.0%} of a slot's best case)")
    low, high = min(measured), max(measured)
    if len(measured) == 1:
        low, high = low * (1 - SINGLE_RUN_SPREAD), high * (1 + SINGLE_RUN_SPREAD)
    runs_text = "1 earlier run" if len(measured) == 1 else f"{len(measured)} earlier runs"
    return (low, high), f"yield measured on {runs_text}: {low:.2f}-{high:.2f} records per request"


def output_mean(runs: list[RunRow], max_tokens: float) -> tuple[float, str]:
    """The low completion tokens per request, and where it comes from."""
    sent = sum(r.sent for r in runs)
    if sent:
        mean = min(sum(r.output_tokens for r in runs) / sent, max_tokens)
        return mean, f"completion {mean:.0f} (measured mean) to {max_tokens:.0f} (max_tokens) tokens a request"
    return (DEFAULT_OUTPUT_SHARE * max_tokens, f"completion {DEFAULT_OUTPUT_SHARE:.0%} of max_tokens to all of it "
            f"({DEFAULT_OUTPUT_SHARE * max_tokens:.0f} to {max_tokens:.0f} tokens a request)")


def price_notes(spec: str, prices: PriceTable, prompt: tuple[int, int], completion: tuple[int, int],
                max_cost: float | None) -> tuple[tuple[float, float] | None, tuple[str, ...]]:
    """(low, high) dollars, or None without a price; and what the user should know about them."""
    price = prices.get(spec)
    if price is None:
        return None, (f"no price for '{spec}' in synth/prices.yaml or --prices: dollars unknown",)
    dollars = (price.cost(prompt[0], completion[0]), price.cost(prompt[1], completion[1]))
    notes = []
    if spec.startswith("local:") and not (price.input or price.output):
        notes.append("local teacher: it runs on this machine, so it costs $0")
    if max_cost is not None and max_cost < dollars[0]:
        notes.append(f"--max-cost ${max_cost:g} is below the low estimate ${dollars[0]:.4f}: the run will stop "
                     "at the budget with fewer records than --n")
    elif max_cost is not None and max_cost < dollars[1]:
        notes.append(f"--max-cost ${max_cost:g} is below the high estimate ${dollars[1]:.4f}: the run may stop "
                     "at the budget with fewer records than --n")
    return dollars, tuple(notes)


def slot_shape(seeds: list[dict], method: str, provider: str, *, classify: str = "auto", seed: int = 0,
               window: int = 8, turns: int = 1) -> SlotShape:
    """The requests the first SAMPLE_SLOTS slots would send, rendered from the seeds, in their best case."""
    if method == "self-instruct":
        shape = self_instruct_shape(seeds, provider, classify=classify, seed=seed, window=window)
    elif method == "evol-instruct":
        shape = evol_instruct_shape(seeds, seed=seed)
    else:
        raise ConfigError(f"unknown method '{method}': expected self-instruct or evol-instruct")
    if turns > 1:
        shape = SlotShape(shape.requests + turn_requests(seeds, shape.records, turns, seed), shape.records)
    return shape


def self_instruct_shape(seeds: list[dict], provider: str, *, classify: str, seed: int, window: int) -> SlotShape:
    """Each slot's task-list request exactly as the generator builds it (its own random stream; seed tasks
    stand in for the generated ones slots from the window on also show), then one instance request, and
    the yes/no question where the teacher is asked it, for each of the tasks asked for."""
    gen = SelfInstructGenerator(SimpleNamespace(teacher=SimpleNamespace(provider=provider)), seeds,
                                classify=classify)
    requests = []
    for i in range(SAMPLE_SLOTS):
        rng = random.Random(f"{seed}:{i}")   # the slot's own stream (synth/scheduler.py SlotContext)
        shown = rng.sample(gen.tasks, min(gen.n_seed, len(gen.tasks)))
        if i >= window:
            shown += rng.sample(gen.tasks, min(gen.n_gen, len(gen.tasks)))
        rng.shuffle(shown)
        requests.append(ChatRequest.of(gen.t_tasks.render(examples=[t for t, _ in shown], count=gen.per_request),
                                       max_tokens=gen.max_tokens))
        for task, _ in rng.choices(gen.tasks, k=gen.per_request):
            requests += _instance_requests(gen, task, rng)
    return SlotShape(tuple(requests), SAMPLE_SLOTS * gen.per_request)


def _instance_requests(gen: SelfInstructGenerator, task: str, rng: random.Random) -> list[ChatRequest]:
    is_class = bool(CLASSIFICATION_RULE.search(task))
    out = []
    if not is_class and gen.classify == "teacher":
        out.append(ChatRequest.of(gen.t_is_class.render(instruction=task), max_tokens=IS_CLASS_MAX_TOKENS))
    pool = (gen.class_examples if is_class else gen.plain_examples) or gen.class_examples or gen.plain_examples
    template = gen.t_inst_class if is_class else gen.t_inst
    examples = rng.sample(pool, min(gen.n_inst, len(pool)))
    return out + [ChatRequest.of(template.render(examples=examples, instruction=task), max_tokens=gen.max_tokens)]


def evol_instruct_shape(seeds: list[dict], *, seed: int) -> SlotShape:
    """Each slot's evolution request exactly as the generator builds it (parent and operation from its own
    random stream), then the answer request, with the parent standing in for the rewritten prompt."""
    gen = EvolInstructGenerator(None, seeds)
    requests = []
    for i in range(SAMPLE_SLOTS):
        rng = random.Random(f"{seed}:{i}")
        parent, op = rng.choice(gen.seeds), rng.choice(OPERATIONS)
        template = gen.t_breadth if op == "breadth" else gen.t_depth
        values = {"instruction": parent["instruction"], **({} if op == "breadth" else {"method": IN_DEPTH[op]})}
        inp = "" if op == "breadth" else parent.get("input") or ""
        requests += [ChatRequest.of(template.render(**values), max_tokens=EVOLVE_MAX_TOKENS),
                     ChatRequest.of(gen.t_respond.render(instruction=parent["instruction"], input=inp),
                                    max_tokens=gen.max_tokens)]
    return SlotShape(tuple(requests), SAMPLE_SLOTS)


def turn_requests(seeds: list[dict], records: int, turns: int, seed: int) -> tuple[ChatRequest, ...]:
    """For each record, the user-message and answer requests of every further turn (synth/conversations.py);
    a seed conversation stands in for the record, and its first exchange for each turn added."""
    gen = MultiTurnGenerator(SimpleNamespace(name="estimate"), None, seeds, turns=turns)
    rng = random.Random(f"{seed}:turns")
    pool = [m for _, m in gen.examples] or [record_messages(s) for s in seeds]
    out = []
    for _ in range(records):
        messages = list(rng.choice(pool))
        shown = rng.sample(pool, min(EXAMPLES, len(pool)))
        for _ in range(turns - 1):
            out.append(ChatRequest.of(gen.t_user.render(examples=shown, conversation=messages),
                                      max_tokens=gen.max_tokens))
            messages = messages + messages[:1]
            out.append(ChatRequest.of(messages, max_tokens=gen.max_tokens))
            messages = messages + messages[1:2]
    return tuple(out)
