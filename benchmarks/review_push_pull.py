"""Push and pull of 10,000 tasks against a real local Label Studio, beside the bare SDK calls.

    .venv/bin/python benchmarks/review_push_pull.py [--n 10000] [--annotated 0.3]

Starts its own server (temporary data folder, free port; about a minute), then measures:
- push: `push_records` into a new project (project lookup, listing ids already there, 1,000-task
  imports with predictions) vs the baseline, bare `projects.import_tasks` of the same tasks in
  1,000-task requests into another new project;
- re-push of the same table (nothing to import: the idempotence check alone);
- pull: `pull_records` (export, annotations to verdicts, records rebuilt) plus writing the Parquet
  file, vs the baseline, the bare SDK JSON export of the same project. A share of the tasks carries
  an annotation (imported with the tasks) so the mapping has verdicts to read.
Seconds are wall-clock on a shared machine: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curate.review import connect, pull_records, push_records  # noqa: E402
from curate.review.server import LocalLabelStudio, find_label_studio, free_port, personal_access_token  # noqa: E402
from curate.review.tasks import to_task  # noqa: E402
from seedloop.core.record import new_record, to_frame  # noqa: E402
from seedloop.core.tables import write_table  # noqa: E402

ADMIN, PASSWORD = "bench@localhost", "bench-password-1"


def table(n: int):
    rng = random.Random(0)
    words = "account card transfer refund limit fee balance pin app branch loan rate".split()
    return to_frame([new_record(f"Customer {i} asks: why was my {rng.choice(words)} {rng.choice(words)} declined?",
                                "", f"Answer {i}: " + " ".join(rng.choices(words, k=30)), teacher="local",
                                prompt="self_instruct/instances@00000000", parents=[f"seed-{i % 36}"],
                                scores={"judge_score": float(rng.randint(1, 5))}) for i in range(n)])


def annotated_tasks(df, share: float) -> list[dict]:
    """The tasks push would send, a `share` of them with an accept/reject/edit annotation attached."""
    rng = random.Random(1)
    out = []
    for rec in df.to_dicts():
        task = to_task(rec)
        if rng.random() < share:
            verdict = rng.choice(["accept", "reject", "edit"])
            answer = rec["output"] + (" (fixed)" if verdict == "edit" else "")
            task["annotations"] = [{"result": [
                {"from_name": "verdict", "to_name": "instruction", "type": "choices",
                 "value": {"choices": ["reject" if verdict == "reject" else "accept"]}},
                {"from_name": "output", "to_name": "instruction", "type": "textarea", "value": {"text": [answer]}}]}]
        out.append(task)
    return out


def bare_import(conn, title: str, tasks: list[dict]) -> tuple[int, float]:
    from curate.review.tasks import label_config

    start = time.perf_counter()
    project = conn.sdk.projects.create(title=title, label_config=label_config()[0])
    for i in range(0, len(tasks), 1000):
        conn.sdk.projects.import_tasks(id=project.id, request=tasks[i:i + 1000])
    return project.id, time.perf_counter() - start


def bare_export(conn, project_id: int) -> tuple[int, float]:
    start = time.perf_counter()
    body = b"".join(conn.sdk.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=True))
    return len(json.loads(body)), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--annotated", type=float, default=0.3, help="share of tasks with an annotation (pull)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seedloop-bench-ls-") as tmp:
        server = LocalLabelStudio(Path(tmp) / "data", port=free_port(), executable=find_label_studio(cwd=ROOT))
        server.start(username=ADMIN, password=PASSWORD)
        try:
            t = time.perf_counter()
            server.wait_ready()
            print(f"Label Studio up on {server.url} in {time.perf_counter() - t:.0f} s", flush=True)
            run(connect(server.url, personal_access_token(server.url, ADMIN, PASSWORD)), args, Path(tmp))
        finally:
            server.stop()


def run(conn, args, tmp: Path) -> None:
    df = table(args.n)
    tasks = annotated_tasks(df, args.annotated)
    plain = [{k: v for k, v in task.items() if k != "annotations"} for task in tasks]

    _, base_push = bare_import(conn, "bench-bare-push", plain)
    ours = push_records(conn, df, "bench-push")
    assert ours.imported == args.n, ours
    again = push_records(conn, df, "bench-push")
    assert again.imported == 0, again

    annotated_id, _ = bare_import(conn, "bench-pull", tasks)
    exported, base_pull = bare_export(conn, annotated_id)
    start = time.perf_counter()
    records, stats = pull_records(conn, "bench-pull")
    write_table(records, tmp / "pulled.parquet")
    our_pull = time.perf_counter() - start
    assert records.height == args.n == exported, (records.height, exported)

    print(f"\n{args.n:,} tasks, {stats.reviewed:,} with a verdict ({dict(stats.verdicts)})")
    print(f"{'':34}{'seedloop':>10}{'bare SDK':>10}{'ratio':>8}")
    print(f"{'push (new project)':34}{ours.seconds:>9.1f}s{base_push:>9.1f}s{ours.seconds / base_push:>7.2f}x")
    print(f"{'re-push (all already there)':34}{again.seconds:>9.1f}s{'':>10}{'':>8}")
    print(f"{'pull (export, map, write parquet)':34}{our_pull:>9.1f}s{base_pull:>9.1f}s{our_pull / base_pull:>7.2f}x")


if __name__ == "__main__":
    main()
