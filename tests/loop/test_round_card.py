"""Every round folder gets a dataset card (README.md) for its table: round 0 for pool.parquet, with
the curation settings and drops; later rounds for train.parquet, with the rows the training set left
out. Both name the workspace's evaluation set as the decontamination set. Curation is stubbed (its own
tests cover it); the training-set policy is the real one."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import datasets
import polars as pl
from huggingface_hub import DatasetCard

from seedloop.core.record import drop_table, new_record, to_frame
from seedloop.core.tables import write_table
from seedloop.loop import cycle, steps
from seedloop.loop.workspace import DEFAULTS, Workspace, merge


def rec(text: str, **fields) -> dict:
    return new_record(f"Explain the {text} to a customer.", output="an answer", **fields)


def round_of(tmp_path, n: int) -> cycle.Round:
    r = cycle.Round(Workspace(tmp_path / "banking"), merge(DEFAULTS, {}, "test"), n, lambda line: None)
    r.dir.mkdir(parents=True)
    write_table(to_frame([rec("rate", source="seed", status="accepted")]), r.ws.eval_path)
    return r


def test_round_zero_card_describes_the_pool(tmp_path, monkeypatch):
    r = round_of(tmp_path, 0)
    made = [rec(t, source="generated", teacher="local", prompt="self_instruct/instructions@abc123")
            for t in ("fee", "limit", "pin", "card")]
    write_table(to_frame(made), r.path("generated.parquet"))
    stub = SimpleNamespace(kept=to_frame(made[:3]), counts=Counter(refusal=1),
                           drops=drop_table([{**made[3], "reason": "refusal", "stage": "heuristics"}]))
    monkeypatch.setattr(steps, "curate_pool", lambda ws, config, rows, evals, where: stub)
    cycle.curate_rows(r, "generated.parquet")
    card = DatasetCard.load(r.path("README.md"))
    facts = card.data.seedloop
    assert card.data.pretty_name == "banking round 0 (seedloop round)" and card.data.license == "unknown"
    assert card.data.configs[0]["data_files"] == [{"split": "train", "path": "pool.parquet"}]
    assert facts["rows"] == 3 and facts["by_round"] == {"0": 3} and facts["teachers"] == {"local": 3}
    assert facts["prompts"] == [{"template": "self_instruct/instructions", "hash": "abc123", "rows": 3}]
    assert facts["dropped"] == {"refusal": 1} and facts["settings"] == {"curate": r.config["curate"]}
    assert facts["decontamination"] == ["eval.parquet"] and facts["sources"] == ["rounds/000/generated.parquet"]
    rows = datasets.load_dataset("parquet", data_files=str(r.path("pool.parquet")), split="train",
                                 cache_dir=str(tmp_path / "cache"))
    assert rows.num_rows == 3


def test_round_card_describes_the_training_set_and_what_it_left_out(tmp_path):
    r = round_of(tmp_path, 1)
    labels = to_frame([rec("fee", source="generated", status="edited", review={"annotator": "ann@x.org"}),
                       rec("limit", source="generated", status="rejected", review={"annotator": "bo@x.org"})])
    write_table(labels, r.path("labels.parquet"))
    seeds = r.ws.root / "seeds_train.parquet"
    write_table(to_frame([rec("card", source="seed", status="accepted"), rec("rate", source="seed")]), seeds)
    pool = r.ws.round_dir(0) / "pool.parquet"
    pool.parent.mkdir(parents=True)
    write_table(to_frame([rec("fee"), rec("limit"), rec("pin")]), pool)
    cycle.write_training_set(r, seeds, pool)
    facts = DatasetCard.load(r.path("README.md")).data.seedloop
    train = pl.read_parquet(r.path("train.parquet"))
    assert facts["rows"] == train.height == 3                       # fee (edited), card (seed), pin (pool)
    assert facts["by_status"] == {"accepted": 1, "edited": 1, "pending": 1}
    assert facts["reviewers"] == {"ann@x.org": 1}
    assert facts["dropped"] == {"eval_overlap": 1, "rejected_by_review": 1}
    assert facts["settings"] == {"unreviewed": "include", "rows_from": {"reviewed": 1, "seed": 1, "unreviewed": 1}}
    assert facts["sources"] == ["rounds/001/labels.parquet", "seeds_train.parquet", "rounds/000/pool.parquet"]
    assert facts["decontamination"] == ["eval.parquet"]
