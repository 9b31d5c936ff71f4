"""Embedded teacher: generated tokens/s through seedloop vs llama-cpp-python called directly.

Both sides use the packaged SmolLM2-135M-Instruct GGUF with the same prompts, parameters and seeds
(real Self-Instruct prompts rendered from examples/), in one process, one after the other:
- direct: `Llama.create_chat_completion` in the main thread, as a user of llama-cpp-python would;
- seedloop: `TeacherClient.complete` (cache lookups and writes, the engine, the model's own thread),
  several requests in flight as `seedloop generate` issues them.
Each side runs twice, interleaved, and the best of its runs counts (these machines are noisy).

    .venv/bin/python benchmarks/local_teacher_speed.py [--requests 12]

Goal (issue 2): seedloop at least 0.8 of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llama_cpp import Llama  # noqa: E402

from prompts import load_template  # noqa: E402
from synth import ChatRequest, Limits, RequestCache, TeacherClient, load_seeds  # noqa: E402
from seedloop.core.models import packaged_gguf  # noqa: E402
from synth.teachers.local import LlamaCppTeacher  # noqa: E402


def prompts(n: int) -> list[ChatRequest]:
    seeds = load_seeds(ROOT / "examples" / "banking_seeds.jsonl")["instruction"].to_list()
    tpl = load_template("evol_instruct/respond")  # plain chat, no prefill: both sides take the same path
    rng = random.Random(0)
    return [ChatRequest.of(tpl.render(instruction=rng.choice(seeds), input=""), max_tokens=128,
                           temperature=0.7, seed=i) for i in range(n)]


def direct(llm: Llama, reqs: list[ChatRequest]) -> float:
    start, tokens = time.perf_counter(), 0
    for r in reqs:
        out = llm.create_chat_completion(messages=r.message_dicts(), max_tokens=r.max_tokens,
                                         temperature=r.temperature, top_p=r.top_p, seed=r.seed)
        tokens += out["usage"]["completion_tokens"]
    return tokens / (time.perf_counter() - start)


def through_seedloop(teacher: LlamaCppTeacher, reqs: list[ChatRequest], cache: Path) -> float:
    async def run() -> int:
        client = TeacherClient(teacher, RequestCache(cache), limits=Limits(concurrency=8))
        results = await asyncio.gather(*(client.complete(r) for r in reqs))
        return sum(c.output_tokens for c in results)

    start = time.perf_counter()
    tokens = asyncio.run(run())
    return tokens / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=12)
    args = ap.parse_args()
    reqs = prompts(args.requests)
    llm = Llama(model_path=str(packaged_gguf()), n_ctx=4096, n_threads=2, n_threads_batch=2, verbose=False)
    teacher = LlamaCppTeacher(n_threads=2)
    direct_runs, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            direct_runs.append(direct(llm, reqs))
            ours.append(through_seedloop(teacher, reqs, Path(tmp) / f"c{i}.sqlite"))  # fresh cache: no hits
    d, s = max(direct_runs), max(ours)
    print(f"direct llama-cpp-python: {d:.1f} tokens/s  (runs: {', '.join(f'{x:.1f}' for x in direct_runs)})")
    print(f"through seedloop:        {s:.1f} tokens/s  (runs: {', '.join(f'{x:.1f}' for x in ours)})")
    print(f"ratio seedloop / direct: {s / d:.2f}")


if __name__ == "__main__":
    main()
