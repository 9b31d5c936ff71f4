"""The dataset card written into every `datasets` folder: the Hub's YAML header, the counts read from
the table (record tables and preference-pairs tables), what the caller knows (settings, drops,
decontamination sets, licence), and a folder that still loads, or is not there at all."""

from __future__ import annotations

import datasets
import polars as pl
import pytest
from huggingface_hub import DatasetCard

from seedloop.core import dataset_card
from seedloop.core.errors import ConfigError
from seedloop.core.record import MESSAGE, drop_table, to_frame
from seedloop.core.tables import export_hf


def records() -> pl.DataFrame:
    """3 seeds and 5 generated rows (2 rejected): 3 by openai:gpt-x, 2 by local, one template."""
    seeds = [dict(instruction=f"seed {i}", output="yes", source="seed", status="accepted") for i in range(3)]
    made = [dict(instruction=f"made {i}", output="ok", source="generated", status="rejected" if i < 2 else "accepted",
                 teacher="openai:gpt-x" if i < 3 else "local", prompt="self_instruct@abc123", round=1,
                 review={"annotator": "ann@x.org, bo@x.org"} if i == 0 else None) for i in range(5)]
    return to_frame(seeds + made)


def pairs(prompt_as_text: bool) -> pl.DataFrame:
    """A preference-pairs table: 2 edit pairs by ann, 1 rejection by bo; rounds 1, 1, 2."""
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    return pl.DataFrame({
        "prompt": [p[0]["content"] for p in prompts] if prompt_as_text else prompts,
        "chosen": ["good a", "good b", "good c"], "rejected": ["bad a", "bad b", "bad c"],
        "chosen_id": ["c1", "c2", "c3"], "rejected_id": ["r1", "r2", "r3"],
        "origin": ["edit", "edit", "rejection"], "reviewer": ["ann", "ann", "bo"], "round": [1, 1, 2],
    }, schema_overrides=None if prompt_as_text else {"prompt": pl.List(MESSAGE)})


def load_card(folder) -> DatasetCard:
    # a Path, not a str: DatasetCard.load reads a str that is not a file as a Hub repo id
    return DatasetCard.load(folder / "README.md")


def test_record_table_card_has_the_hub_header_and_the_counts(tmp_path):
    drops = drop_table([{"instruction": "x", "reason": "near_duplicate"}] * 3 + [{"instruction": "y",
                                                                                  "reason": "refusal"}])
    folder = export_hf(records(), tmp_path / "curated", stage="curate", settings={"threshold": 0.9, "keep": "score"},
                       drops=drops, decontamination=["eval.jsonl"], license="CC-BY-4.0", sources=["gen.parquet"])
    card = load_card(folder)
    head = card.data
    assert head.license == "cc-by-4.0" and head.pretty_name == "curated (seedloop curate)"
    assert head.size_categories == "n<1K" and head.task_categories == ["text-generation"]
    assert head.tags == ["seedloop", "curate", "synthetic"]
    assert head.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "data-*.arrow"}]}]
    facts = head.seedloop
    assert facts["rows"] == 8 and facts["by_source"] == {"generated": 5, "seed": 3}
    assert facts["by_status"] == {"accepted": 6, "rejected": 2}
    assert facts["by_round"] == {"1": 5, "unknown": 3}   # to_frame leaves the seeds' round empty
    assert facts["teachers"] == {"openai:gpt-x": 3, "local": 2}
    assert facts["prompts"] == [{"template": "self_instruct", "hash": "abc123", "rows": 5}]
    assert facts["reviewers"] == {"ann@x.org": 1, "bo@x.org": 1}
    assert facts["settings"] == {"threshold": 0.9, "keep": "score"}
    assert facts["dropped"] == {"near_duplicate": 3, "refusal": 1}
    assert facts["decontamination"] == ["eval.jsonl"] and facts["sources"] == ["gen.parquet"]
    for line in ("| seed | 3 |", "| generated | 5 |", "| rejected | 2 |", "| openai:gpt-x | 3 |", "| local | 2 |",
                 "| `self_instruct` | `abc123` | 5 |", "| near_duplicate | 3 |", "4 rows left out", "- `eval.jsonl`",
                 "threshold: 0.9", "`cc-by-4.0`"):
        assert line in card.text, line
    assert datasets.load_from_disk(str(folder)).num_rows == 8


def test_the_headers_configs_load_the_folder_with_load_dataset(tmp_path):
    folder = export_hf(records(), tmp_path / "hf", stage="generate")
    files = load_card(folder).data.configs[0]["data_files"][0]["path"]
    rows = datasets.load_dataset("arrow", data_files=str(folder / files), split="train",
                                 cache_dir=str(tmp_path / "cache"))
    assert rows.num_rows == 8 and sorted(rows["instruction"]) == sorted(records()["instruction"])


@pytest.mark.parametrize("prompt_as_text", [True, False], ids=["text prompt", "chat prompt"])
def test_pairs_table_counts_by_origin_reviewer_and_round(tmp_path, prompt_as_text):
    folder = export_hf(pairs(prompt_as_text), tmp_path / "pairs", stage="pairs", settings={"min_gap": None})
    card = load_card(folder)
    facts = card.data.seedloop
    assert facts["rows"] == 3 and facts["by_origin"] == {"edit": 2, "rejection": 1}
    assert facts["by_reviewer"] == {"ann": 2, "bo": 1} and facts["by_round"] == {"1": 2, "2": 1}
    assert not {"by_source", "by_status", "teachers", "prompts"} & set(facts)   # a pair's prompt is no template
    assert card.data.tags == ["seedloop", "pairs", "dpo", "preference"]
    assert "| edit | 2 |" in card.text and "| bo | 1 |" in card.text and "Teachers" not in card.text
    assert datasets.load_from_disk(str(folder)).num_rows == 3


def test_defaults_say_unknown_and_none(tmp_path):
    seeds = records().filter(pl.col("source") == "seed")
    card = load_card(export_hf(seeds, tmp_path / "seeds"))
    assert card.data.license == "unknown" and card.data.tags == ["seedloop", "table"]
    assert card.data.seedloop["teachers"] == {} and card.data.seedloop["dropped"] == {}
    assert "No teacher wrote these rows." in card.text and "None recorded by this step." in card.text
    assert "not checked against an evaluation set" in card.text and "Not stated." in card.text


def test_drops_given_as_counts(tmp_path):
    card = load_card(export_hf(records(), tmp_path / "g", stage="generate", drops={"refusal": 2, "too_similar": 5,
                                                                                   "empty": 0}))
    assert list(card.data.seedloop["dropped"].items()) == [("too_similar", 5), ("refusal", 2)]


def test_bad_licence_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="cc-by-4.0"):
        export_hf(records(), tmp_path / "hf", license="CC BY 4.0")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_half_folder_and_keeps_the_old_one(tmp_path, monkeypatch):
    folder = export_hf(records(), tmp_path / "hf", stage="generate")
    before = (folder / "README.md").read_text()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(dataset_card, "write_card", broken)
    with pytest.raises(OSError, match="disk full"):
        export_hf(records().head(2), folder, stage="curate")
    with pytest.raises(OSError, match="disk full"):
        export_hf(records(), tmp_path / "new", stage="curate")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]   # no temporary folder, no "new"
    assert (folder / "README.md").read_text() == before and datasets.load_from_disk(str(folder)).num_rows == 8


def test_size_categories_follow_the_hubs_bins():
    assert [dataset_card.size_category(n) for n in (0, 999, 1000, 12_345, 2_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]
