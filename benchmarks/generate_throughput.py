"""Engine throughput against an OpenAI-compatible server that adds a fixed latency L.

The server (tests/fakes.py) runs in its own process (it shares the machine's cores with the client). For each concurrency C it sends requests through
seedloop's TeacherClient (cache, limits, retries, the openai SDK) and prints requests/s as a fraction
of the bound C/L. Then the same for a whole `self-instruct` generation (scheduler included), whose
slots chain several requests, so its fraction also shows the cost of the deterministic window.

    .venv/bin/python benchmarks/generate_throughput.py [--latency 0.25] [--requests 2048]

Goal (issue 2): at least 0.9 of C/L at C = 64.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synth import ChatRequest, Limits, RequestCache, TeacherClient, load_seeds  # noqa: E402
from synth.generate import generate_async  # noqa: E402
from synth.teachers.openai import OpenAITeacher  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes", "--latency", str(latency)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


async def engine_rate(url: str, concurrency: int, requests: int, cache: Path) -> tuple[float, float]:
    client = TeacherClient(OpenAITeacher("fake", base_url=url), RequestCache(cache),
                           limits=Limits(concurrency=concurrency))
    reqs = [ChatRequest.of([{"role": "user", "content": f"Say something about item {i}."}], max_tokens=32)
            for i in range(requests)]
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client.complete(r) for r in reqs))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.teacher.aclose()
    return requests / elapsed, 1000 * cpu / requests


async def generate_rate(url: str, concurrency: int, n: int, cache: Path) -> float:
    client = TeacherClient(OpenAITeacher("fake", base_url=url), RequestCache(cache),
                           limits=Limits(concurrency=concurrency))
    seeds = load_seeds(ROOT / "examples" / "banking_seeds.jsonl")
    start = time.perf_counter()
    await generate_async(seeds, client, n=n, classify="rule")
    elapsed = time.perf_counter() - start
    await client.teacher.aclose()
    return client.stats.sent / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--requests", type=int, default=2048)   # a cap: C = 64 needs 1,536 for its 6 s
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "unused")
    proc, url = start_server(args.latency)
    L = args.latency
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"server latency L = {L:.3f} s; {args.requests} distinct requests per run")
            print(f"{'C':>4} {'engine req/s':>13} {'C/L':>8} {'fraction':>9} {'CPU ms/req':>11} | "
                  f"{'generate req/s':>15} {'fraction':>9}")
            for c in (1, 8, 64):
                n_req = min(args.requests, max(16, int(c / L * 6)))  # about 6 s of work each
                eng, cpu_ms = asyncio.run(engine_rate(url, c, n_req, Path(tmp) / f"e{c}.sqlite"))
                gen = asyncio.run(generate_rate(url, c, max(8, 2 * c), Path(tmp) / f"g{c}.sqlite"))
                bound = c / L
                print(f"{c:>4} {eng:>13.1f} {bound:>8.1f} {eng / bound:>9.2f} {cpu_ms:>11.2f} | "
                      f"{gen:>15.1f} {gen / bound:>9.2f}")
            print("CPU ms/req: the client's own CPU per request; at C/L requests/s it needs C/L * that / 1000 "
                  "of a core, which the server process and anything else running share with it")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
