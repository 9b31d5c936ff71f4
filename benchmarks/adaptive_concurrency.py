"""Throughput against a hidden rate limit: the adaptive rate (synth/adaptive.py) beside a fixed
concurrency and beside a hand-tuned `--rpm`.

The server (tests/fakes.py, in its own process) lets at most R requests in any second through and
answers the rest 429 with Retry-After, after a latency L. For each R, as many distinct requests as
R * --seconds go through seedloop's TeacherClient, three ways, all with --concurrency C:

    adaptive   the default: the pace is found from the 429s
    fixed      --no-adaptive: C in flight, retries honouring Retry-After and nothing else
    --rpm      --no-adaptive --rpm 60R: the limit known in advance (a bucket of a minute's requests)

and it prints the sustained rate (after the first 3 s, until the last second) as a fraction of R,
the 429s per request, and the requests lost (given up after --max-retries, default 5).

    .venv/bin/python benchmarks/adaptive_concurrency.py [--limits 10 40 100] [--latency 0.25] [--seconds 10]

Goal (issue 17): adaptive within 10% of R, nothing lost.
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

from synth import ChatRequest, Limits, RequestCache, TeacherClient  # noqa: E402
from synth.teachers.openai import OpenAITeacher  # noqa: E402

MODES = {"adaptive": {}, "fixed": {"adaptive": False}, "--rpm": {"adaptive": False, "rpm": None}}


def start_server(latency: float, limit: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes", "--latency", str(latency), "--rate-limit",
                             str(limit)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


async def run(url: str, limits: Limits, n: int, cache: Path) -> tuple[list[float], int, int]:
    """Completion times (s from the start) of the answered requests, the 429s, the requests lost."""
    client = TeacherClient(OpenAITeacher("fake", base_url=url), RequestCache(cache), limits=limits)
    start, done = time.monotonic(), []

    async def one(i: int) -> None:
        await client.complete(ChatRequest.of([{"role": "user", "content": f"Say something about item {i}."}],
                                             max_tokens=16))
        done.append(time.monotonic() - start)

    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    await client.teacher.aclose()
    refused = sum(count for error, count in client.stats.errors.items() if error.startswith("HTTP 429"))
    return sorted(done), refused, sum(isinstance(r, Exception) for r in results)


def sustained(done: list[float]) -> float:
    """Answers a second after a 3 s warm-up, until the last second (when the backlog runs dry)."""
    if not done or done[-1] < 5:
        return float("nan")
    return sum(1 for t in done if 3 <= t < done[-1] - 1) / (done[-1] - 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limits", type=float, nargs="+", default=[10, 40, 100], help="hidden limits R, requests/s")
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10, help="about how long each run lasts at R")
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "unused")
    print(f"latency L = {args.latency:.2f} s, --concurrency {args.concurrency} (alone it would send "
          f"{args.concurrency / args.latency:.0f} requests/s)")
    print(f"{'R':>6} {'mode':>9} {'req/s':>7} {'of R':>6} {'429/req':>8} {'lost':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for limit in args.limits:
            proc, url = start_server(args.latency, limit)
            try:
                for mode, options in MODES.items():
                    options = {**options, **({"rpm": 60 * limit} if "rpm" in options else {})}
                    limits = Limits(concurrency=args.concurrency, **options)
                    n = int(limit * args.seconds)
                    done, refused, lost = asyncio.run(run(url, limits, n, Path(tmp) / f"{limit}-{mode}.sqlite"))
                    rate = sustained(done)
                    print(f"{limit:>6g} {mode:>9} {rate:>7.1f} {rate / limit:>6.2f} {refused / n:>8.2f} {lost:>5}",
                          flush=True)
                    time.sleep(1.0)   # the server's window empties between runs
            finally:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
