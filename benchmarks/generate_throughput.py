"""Engine throughput against an OpenAI-compatible server that adds a fixed latency L.

The server (tests/fakes.py) runs in its own process (it shares the machine's cores with the client). For
each concurrency C it sends requests through
seedloop's TeacherClient (cache, limits, retries, the openai SDK) and prints requests/s as a fraction
of the bound C/L. Then the same for a whole `self-instruct` generation (scheduler included), whose
slots chain several requests, so its fraction also shows the cost of the deterministic window.

    .venv/bin/python benchmarks/generate_throughput.py [--latency 0.5] [--requests 2048] [--records 512]
                                                       [--distilabel]

Goals: the engine at least 0.9 of C/L at C = 64 (issue 2); a whole generation at least 0.85 of C/L at
C = 64 and L = 0.5 s (issue 17). A generation of 2C records (the first table) is mostly start-up and
tail, so the second line runs `--records` records at C = 64.

`--distilabel` also runs distilabel 1.5.3's `TextGeneration` (OpenAILLM, `input_batch_size` = 64, so 64
requests in flight) against the same server in the same run (benchmarks/distilabel_textgen.py, in its
own virtual environment `.venv-distilabel`, made on first use: distilabel pins packages seedloop does
not want) and prints seedloop's rate over distilabel's. distilabel's start-up is subtracted; seedloop's
is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


DISTILABEL_VENV = ROOT / ".venv-distilabel"


def distilabel_rate(url: str, rows: int, batch: int) -> float:
    python = DISTILABEL_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {DISTILABEL_VENV} for distilabel (once; about 2 minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DISTILABEL_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "distilabel[openai]==1.5.3", "requests"],
                       check=True)
    done = subprocess.run([str(python), str(ROOT / "benchmarks" / "distilabel_textgen.py"), "--url", url,
                           "--rows", str(rows), "--batch", str(batch)], capture_output=True, text=True, cwd=ROOT)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not line:
        sys.exit(f"distilabel failed:\n{done.stderr[-3000:]}")
    return json.loads(line[-1][7:])["rows_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--requests", type=int, default=2048)   # a cap: C = 64 needs 1,536 for its 6 s
    ap.add_argument("--records", type=int, default=512, help="records of the longer generation at C = 64")
    ap.add_argument("--distilabel", action="store_true", help="also run distilabel's TextGeneration at C = 64")
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
            c, bound = 64, 64 / L
            long = asyncio.run(generate_rate(url, c, args.records, Path(tmp) / "long.sqlite"))
            print(f"\nC = {c}: a self-instruct generation of {args.records} records: {long:.1f} req/s, "
                  f"{long / bound:.2f} of C/L")
            if args.distilabel:
                dl = distilabel_rate(url, args.records, c)
                print(f"distilabel TextGeneration, {args.records} rows, batch {c}: {dl:.1f} rows/s "
                      f"({dl / bound:.2f} of C/L); seedloop generation / distilabel: {long / dl:.2f}, "
                      f"seedloop engine / distilabel: {eng / dl:.2f}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
