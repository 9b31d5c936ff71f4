"""distilabel's `TextGeneration` against an OpenAI-compatible server: rows/s, printed as one JSON line.

Run by benchmarks/generate_throughput.py with the Python of a separate virtual environment that has
`distilabel[openai]` (it pins packages seedloop does not want), so this file imports nothing of seedloop:

    .venv-distilabel/bin/python benchmarks/distilabel_textgen.py --url URL --rows 512 --batch 64

`input_batch_size` rows are sent at once (distilabel's OpenAILLM gathers a batch's requests), so the
batch size is distilabel's concurrency. The pipeline runs twice, with `--rows` and with a quarter of
them, and the rate is the difference in rows over the difference in seconds: distilabel's start-up
(its step processes) is left out, in its favour.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def run(url: str, rows: int, batch: int) -> float:
    from distilabel.models.llms import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    data = [{"instruction": f"Say something about item {i} (run {rows})."} for i in range(rows)]
    with Pipeline(name=f"bench-{rows}", cache_dir=tempfile.mkdtemp()) as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=batch)
        generate = TextGeneration(llm=OpenAILLM(model="fake", base_url=url, api_key="unused",
                                                generation_kwargs={"max_new_tokens": 32}),
                                  input_batch_size=batch)
        load >> generate
    start = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    elapsed = time.perf_counter() - start
    assert distiset["default"]["train"].num_rows == rows
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "unused")
    small = max(args.batch, args.rows // 4)
    t_small, t_full = run(args.url, small, args.batch), run(args.url, args.rows, args.batch)
    print("RESULT " + json.dumps({"rows_per_s": (args.rows - small) / (t_full - t_small),
                                  "seconds": t_full, "rows": args.rows}), flush=True)


if __name__ == "__main__":
    main()
