"""`seedloop cycle`: run the next round of the workspace, step by step, skipping what is done.

A step runs only when its manifest entry is missing, its input hash changed, or an output is gone.
Artifacts are written atomically and the manifest after each step, so SIGKILL at any moment leaves
either the old state or the new one; a re-run continues (training resumes from its checkpoint, the
teacher cache answers every request already paid, Label Studio pushes and annotations are keyed by
record id and so never duplicated).

Each step's work is a module-level function (curate_rows, pull_labels, train_student, ...) that takes
the Round, writes the step's outputs and returns what the manifest records; `Round.step` runs it, or
skips it when done on the same inputs.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from seedloop.core.tables import read_table, write_table
from seedloop.loop import preference, reviewer, steps
from seedloop.loop.manifest import Manifest, file_hash, value_hash
from seedloop.loop.workspace import Workspace, load_config

Say = Callable[[str], None]


@dataclass
class Round:
    ws: Workspace
    config: dict
    number: int
    say: Say
    manifest: Manifest = field(init=False)

    def __post_init__(self):
        self.dir = self.ws.round_dir(self.number)
        self.manifest = Manifest(self.dir, self.number)

    def path(self, name: str) -> Path:
        return self.dir / name

    def step(self, name: str, inputs: str, outputs: list[str], run: Callable[..., dict], *args,
             doing: str = "") -> bool:
        """Run `run(*args)` (which writes `outputs` and returns info for the manifest) unless already
        done on the same inputs; `doing` adds to the line said when it starts."""
        if self.manifest.done(name, inputs):
            self.say(f"round {self.number} · {name}: done before, inputs unchanged (skipped)")
            return False
        self.say(f"round {self.number} · {name}{doing} ...")
        start = time.perf_counter()
        info = run(*args) or {}
        self.manifest.finish(name, inputs, outputs, time.perf_counter() - start, **info)
        self.say(f"round {self.number} · {name}: {_brief(info)} ({time.perf_counter() - start:.1f} s)")
        return True


def run_cycle(ws: Workspace, say: Say = print) -> dict:
    """Run (or finish) the next round; returns its manifest data."""
    config = load_config(ws)
    seeds_path = ws.seeds_path(config)
    if not seeds_path.is_file():
        from seedloop.core.errors import InputError
        raise InputError("the workspace's seed file is missing (key 'seeds' in seedloop.yaml)", file=str(seeds_path))
    project, conn = steps.label_studio(config)   # unreachable or bad token: stop here, before any work
    bootstrap = Round(ws, config, 0, say)
    if bootstrap.manifest.data["status"] != "done":
        build_pool(bootstrap)
    number = max(finished_rounds(ws), default=0) + 1
    return run_round(Round(ws, config, number, say), project, conn)


def finished_rounds(ws: Workspace) -> list[int]:
    return [n for n in ws.round_numbers() if n > 0 and Manifest(ws.round_dir(n), n).data["status"] == "done"]


def build_pool(r: Round) -> None:
    """Round 0: the teacher expands the training seeds, or the given pool is read; curation
    (deduplicated, decontaminated against the evaluation split) makes the pool."""
    ws, config = r.ws, r.config
    source = pool_source(r)
    r.step("curate", value_hash([file_hash(r.path(source)), file_hash(ws.eval_path), config["curate"]]),
           ["pool.parquet"], curate_rows, r, source)
    r.manifest.data.update(status="done", config=config)
    r.manifest.save()


def curate_rows(r: Round, source: str) -> dict:
    """The curate step: the rows of `source` -> pool.parquet (and curate_drops.parquet)."""
    result = steps.curate_pool(r.ws, r.config, read_table(r.path(source)), read_table(r.ws.eval_path), where=source)
    pool = result.kept.with_columns(pl.lit(0, dtype=pl.Int32).alias("round"))
    write_table(result.drops, r.path("curate_drops.parquet"))
    write_table(pool, r.path("pool.parquet"))
    write_round_card(r, pool, "pool.parquet", settings={"curate": r.config["curate"]}, drops=result.drops,
                     sources=[_in_workspace(r, r.path(source))])
    return {"kept": pool.height, "dropped": dict(result.counts)}


def pool_source(r: Round) -> str:
    """Write the rows curation starts from (generated.parquet, or given.parquet for `init --pool`);
    returns the file name."""
    ws, config = r.ws, r.config
    given = ws.given_pool(config)
    if given is not None:
        r.step("load_pool", value_hash([file_hash(given)]), ["given.parquet"], load_given, r, given)
        return "given.parquet"
    seeds_train = ws.root / "seeds_train.parquet"
    r.step("generate", value_hash([file_hash(seeds_train), config["teacher"], config["generate"]]),
           ["generated.parquet"], generate_rows, r, seeds_train)
    return "generated.parquet"


def load_given(r: Round, given: Path) -> dict:
    """The load_pool step: the pool file given to `init --pool` -> given.parquet."""
    rows = steps.load_pool(given)
    write_table(rows, r.path("given.parquet"))
    return {"records": rows.height, "file": given.name}


def generate_rows(r: Round, seeds_train: Path) -> dict:
    """The generate step: the teacher expands the training seeds -> generated.parquet."""
    result = steps.generate(r.ws, r.config, read_table(seeds_train))
    write_table(result.records, r.path("generated.parquet"))
    return {"records": result.records.height, "requests_sent": result.stats.sent,
            "requests_cached": result.stats.cached, "cost_usd": round(result.spent, 6),
            "dropped": dict(result.drop_counts), "stop_reason": result.stop_reason}


def run_round(r: Round, project: str | None, conn) -> dict:
    ws, config, n = r.ws, r.config, r.number
    r.manifest.data["config"] = config
    pool_path, seeds_train = ws.round_dir(0) / "pool.parquet", ws.root / "seeds_train.parquet"
    r.step("pull", value_hash([project, n, _reviewed_hashes(ws, n)]), ["labels.parquet"], pull_labels,
           r, project, conn)
    r.step("training_set", value_hash([file_hash(r.path("labels.parquet")), file_hash(seeds_train),
                                       file_hash(pool_path), file_hash(ws.eval_path), config["train"]["unreviewed"]]),
           ["train.parquet"], write_training_set, r, seeds_train, pool_path)
    train_step(r)
    evaluate_and_promote(r)
    select_and_push(r, project, conn)
    r.manifest.data.update(summary(r), status="done")
    r.manifest.save()
    return r.manifest.data


def pull_labels(r: Round, project: str | None, conn) -> dict:
    """The pull step: every record a reviewer has decided on so far -> labels.parquet."""
    labels = steps.pull(r.ws, r.number, project, conn)
    write_table(labels, r.path("labels.parquet"))
    before = labels_before(r.ws, r.number)
    return {"labels": labels.height, "gained": labels.height - before,
            "by_status": dict(labels["status"].value_counts().iter_rows()) if labels.height else {}}


def write_training_set(r: Round, seeds_train: Path, pool_path: Path) -> dict:
    """The training_set step: reviewed rows, seeds and (policy) unreviewed pool rows -> train.parquet."""
    unreviewed = r.config["train"]["unreviewed"]
    df, counts = steps.training_set(read_table(r.path("labels.parquet")), read_table(seeds_train),
                                    read_table(pool_path), read_table(r.ws.eval_path), unreviewed)
    write_table(df, r.path("train.parquet"))
    parts = {k: v for k, v in counts.items() if k not in LEFT_OUT}
    write_round_card(r, df, "train.parquet", settings={"unreviewed": unreviewed, "rows_from": parts},
                     drops={k: counts[k] for k in LEFT_OUT if k in counts},
                     sources=[_in_workspace(r, p) for p in (r.path("labels.parquet"), seeds_train, pool_path)])
    return {"rows": df.height, "counts": counts, "policy": f"unreviewed pool rows: {unreviewed}"}


LEFT_OUT = ("rejected_by_review", "eval_overlap")   # steps.training_set's counts of rows it left out


def write_round_card(r: Round, df: pl.DataFrame, data_file: str, **card) -> None:
    """rounds/NNN/README.md: the dataset card of the round's table (pool.parquet in round 0, else
    train.parquet), its rows checked against the workspace's evaluation set. The licence is unknown:
    a workspace does not record one."""
    from seedloop.core.dataset_card import write_card

    write_card(r.dir, df, name=f"{r.ws.root.name} round {r.number}", stage="round", data_files=data_file,
               decontamination=[_in_workspace(r, r.ws.eval_path)], **card)


def _in_workspace(r: Round, path: Path) -> str:
    # paths inside the workspace, so the card reads the same wherever the workspace is moved
    path = Path(path).resolve()
    return path.relative_to(r.ws.root.resolve()).as_posix() if path.is_relative_to(r.ws.root.resolve()) else path.name


def summary(r: Round) -> dict:
    """The round at a glance: input file hashes, counts, metrics, timings and the selected ids."""
    ws, m = r.ws, r.manifest
    prev = m.get("train", "init_adapter")
    files = {"seeds": ws.seeds_path(r.config), "seeds_train": ws.root / "seeds_train.parquet",
             "eval": ws.eval_path, "pool": ws.round_dir(0) / "pool.parquet", "labels": r.path("labels.parquet"),
             "train": r.path("train.parquet"), "adapter": r.path("adapter/adapter_model.safetensors")}
    if prev:
        files["init_adapter"] = Path(prev) / "adapter_model.safetensors"
    return {"inputs": {k: file_hash(p) for k, p in files.items()},
            "counts": {"labels": m.get("pull", "labels"), "labels_gained": m.get("pull", "gained"),
                       "train_rows": m.get("training_set", "rows"), "selected": m.get("select", "selected"),
                       "pushed": m.get("push", "imported")},
            "metrics": m.get("evaluate", "metrics"), "promoted": m.get("promote", "promoted"),
            "promote_rule": m.get("promote", "rule"),
            "timings": {k: v.get("seconds") for k, v in m.steps.items()},
            "selected_ids": m.get("select", "ids")}


def train_step(r: Round) -> None:
    """Train this round's student (a classifier or a generator, steps.plan_training), warm-started from
    the promoted model of the same kind; a re-run on the same inputs resumes or skips. With
    train.objective dpo or sft+dpo, DPO on the round's preference pairs follows (loop/preference.py)."""
    prev = promoted_adapter(r.ws, before=r.number)
    plan, warm, notes = steps.plan_training(r.config, r.path("train.parquet"), prev, str(r.ws.config_path))
    objective = preference.objective_for_round(r, plan.task)
    if objective != "dpo":
        out = "sft" if objective == "sft+dpo" else "adapter"   # the round's model is always adapter/
        inputs = value_hash([file_hash(r.path("train.parquet")), file_hash(warm / "adapter_model.safetensors")
                             if warm else None, plan.settings, plan.base])
        r.step("train", inputs, [f"{out}/metrics.json", f"{out}/adapter_model.safetensors"], train_student,
               r, inputs, plan, warm, notes, out,
               doing=f" {plan.task} on {plan.base} ({notes['why']})" + (f", warm start from {warm}" if warm else ""))
    if objective != "sft":
        start = r.path("sft") if objective == "sft+dpo" else warm
        preference.dpo_step(r, plan.base, start, plan.settings.get("four_bit", True), notes)


def train_student(r: Round, inputs: str, plan, warm: Path | None, notes: dict, out_name: str = "adapter") -> dict:
    """The train step: `plan` run into OUT_NAME/, resuming a run begun on the same inputs."""
    out = r.path(out_name)
    if not r.manifest.started("train", inputs) and out.exists():
        shutil.rmtree(out)   # a run on other inputs: its checkpoints must not be resumed
    metrics = plan.run(out, init_adapter=warm, resume=True)
    return {**notes, "init_adapter": str(warm) if warm else None, "steps": metrics.get("steps"),
            "final_eval_loss": metrics.get("final_eval_loss") or metrics.get("eval_loss"),
            "train_loss": metrics.get("train_loss"), "records": (metrics.get("data") or {}).get("counts")}


def evaluate_and_promote(r: Round) -> None:
    r.step("evaluate", value_hash([file_hash(r.path("adapter/adapter_model.safetensors")),
                                   file_hash(r.ws.eval_path), r.config["eval"]]), ["eval.json"], evaluate_student, r)
    prev = promoted_adapter(r.ws, before=r.number)
    prev_metrics = json.loads((prev.parent / "eval.json").read_text()) if prev else None
    new_metrics = json.loads(r.path("eval.json").read_text())
    task = r.manifest.get("train", "task") or "generation"   # rounds from before classifiers: generators
    r.step("promote", value_hash([new_metrics, prev_metrics, r.config["promote"], task]), [], decide_promotion,
           r, new_metrics, prev_metrics, prev, task)
    r.say(f"round {r.number} · promote rule: {r.manifest.get('promote', 'rule')}")


def evaluate_student(r: Round) -> dict:
    """The evaluate step: this round's model on eval.parquet -> eval.json (its numeric metrics)."""
    import train

    metrics = train.evaluate(r.path("adapter"), r.ws.eval_path, max_new_tokens=r.config["eval"]["max_new_tokens"])
    keep = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    _write_json(r.path("eval.json"), keep)
    return {"loss": keep.get("loss"), "accuracy": keep.get("accuracy"), "rouge_l": keep.get("rouge_l"),
            "metrics": keep}


def decide_promotion(r: Round, new_metrics: dict, prev_metrics: dict | None, prev: Path | None, task: str) -> dict:
    """The promote step: whether this round's model replaces the promoted one, and the rule."""
    ok, rule = steps.promote(r.config, new_metrics, prev_metrics, task)
    if ok:
        import train

        train.write_model_card(r.path("adapter"), evaluation=new_metrics)   # the promoted model says how good it is
    return {"promoted": ok, "rule": rule, "metric": steps.promote_metric(r.config, task),
            "previous": str(prev) if prev else None}


def select_and_push(r: Round, project: str | None, conn) -> None:
    ws, config, n = r.ws, r.config, r.number
    model = promoted_adapter(ws, before=n + 1)
    pool = read_table(ws.round_dir(0) / "pool.parquet")
    used = sent_ids(ws, before=n) | set(read_table(r.path("labels.parquet"))["id"])
    candidates = pool.filter(~pl.col("id").is_in(list(used)))
    r.step("select", value_hash([file_hash(model / "adapter_model.safetensors"), sorted(used), file_hash(
        ws.round_dir(0) / "pool.parquet"), config["select"]]), ["selection.parquet"], select_items,
        r, model, candidates, pool)
    picks = read_table(r.path("selection.parquet"))
    if conn is not None:
        r.step("push", value_hash([file_hash(r.path("selection.parquet")), project]), [], push_selection,
               r, picks, project, conn)
    if config["review"]["auto"]:
        auto_review(r, picks, pool, project, conn)


def select_items(r: Round, model: Path, candidates: pl.DataFrame, pool: pl.DataFrame) -> dict:
    """The select step: the promoted model picks from the candidates -> selection.parquet."""
    if candidates.height == 0:
        write_table(pool.clear(), r.path("selection.parquet"))
        return {"selected": 0, "ids": [], "candidates": 0}
    from curate.embed import Embedder

    embedder = Embedder(None, cache=r.ws.embeddings)
    try:
        result = steps.select_batch(model, candidates, r.config, r.number, embedder)
    finally:
        embedder.close()
    write_table(result.picks, r.path("selection.parquet"))
    return {"selected": result.picks.height, "candidates": candidates.height, "model": str(model),
            "ids": result.picks["id"].to_list()}


def push_selection(r: Round, picks: pl.DataFrame, project: str, conn) -> dict:
    """The push step: the picks -> tasks of the Label Studio project, the model's answers prefilled."""
    from curate.review import push_records

    res = push_records(conn, picks, project, model_version=f"round-{r.number}")
    return {"project": project, "imported": res.imported, "skipped": dict(res.skipped)}


def auto_review(r: Round, picks: pl.DataFrame, pool: pl.DataFrame, project: str | None, conn) -> None:
    rouge = r.config["review"]["accept_rouge"]
    # the selecting model's kind says what its answers are: a classifier's are labels, right or wrong
    labels = steps.model_task(promoted_adapter(r.ws, before=r.number + 1)) == "classification"
    outputs = [] if conn is not None else ["reviewed.parquet"]
    r.step("auto_review", value_hash([file_hash(r.path("selection.parquet")), rouge, project, labels]), outputs,
           review_picks, r, picks, pool, project, conn, rouge, labels)


def review_picks(r: Round, picks: pl.DataFrame, pool: pl.DataFrame, project: str | None, conn,
                 rouge: float, labels: bool) -> dict:
    """The auto_review step: the automatic reviewer decides on the picks, in Label Studio when the
    workspace has a project, else -> reviewed.parquet."""
    if conn is not None:
        return reviewer.annotate_in_label_studio(conn, project, picks, pool, rouge, labels=labels)
    reviewed = reviewer.review_table(picks, pool, rouge, labels=labels)
    write_table(reviewed, r.path("reviewed.parquet"))
    return dict(reviewed["status"].value_counts().iter_rows()) if reviewed.height else {}


def promoted_adapter(ws: Workspace, before: int) -> Path | None:
    """The adapter of the latest round before `before` whose promote step said yes."""
    for n in sorted(ws.round_numbers(), reverse=True):
        if 0 < n < before and Manifest(ws.round_dir(n), n).get("promote", "promoted"):
            return ws.round_dir(n) / "adapter"
    return None


def sent_ids(ws: Workspace, before: int) -> set[str]:
    ids: set[str] = set()
    for n in ws.round_numbers():
        if 0 < n < before and (p := ws.round_dir(n) / "selection.parquet").is_file():
            ids |= set(pl.read_parquet(p, columns=["id"])["id"])
    return ids


def labels_before(ws: Workspace, n: int) -> int:
    """Labels pulled by the latest round before `n` that pulled any (0 before the first)."""
    for k in sorted((k for k in ws.round_numbers() if 0 < k < n), reverse=True):
        labels = Manifest(ws.round_dir(k), k).get("pull", "labels")
        if labels is not None:
            return labels
    return 0


def _reviewed_hashes(ws: Workspace, n: int) -> list[str]:
    return [file_hash(ws.round_dir(k) / "reviewed.parquet") for k in range(1, n)]


def _write_json(path: Path, data: dict) -> None:
    from seedloop.core.atomic import write_text

    write_text(path, json.dumps(data, indent=2) + "\n")


def _brief(info: dict) -> str:
    return ", ".join(f"{k} {round(v, 4) if isinstance(v, float) else v}" for k, v in info.items()
                     if not isinstance(v, (list, dict)) and v is not None)
