"""Records to tasks and back, and the labeling config the pull depends on."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from curate.review import tasks
from seedloop.core.record import new_record


def test_task_carries_id_lineage_and_a_prefilled_prediction():
    rec = new_record("Name the capital of France.", "", "Paris", teacher="openai:gpt-4o-mini",
                     prompt="self_instruct/instances@12345678", parents=["s1", "s2"], round=0,
                     scores={"judge_score": 4.0, "uncertainty": 0.9})
    task = tasks.to_task(rec)
    assert task["data"]["record_id"] == rec["id"]
    assert task["data"]["output"] == "Paris"
    assert task["data"]["record"]["parents"] == ["s1", "s2"]
    [pred] = task["predictions"]
    assert pred["model_version"] == "openai:gpt-4o-mini"
    assert pred["score"] == 4.0                            # the judge score before the uncertainty
    assert pred["result"][0]["value"] == {"text": ["Paris"]}
    assert pred["result"][0]["from_name"] == "output"
    back = tasks.to_record(task["data"])
    assert {k: back[k] for k in ("id", "instruction", "output", "teacher", "prompt", "parents", "round")} == \
        {k: rec[k] for k in ("id", "instruction", "output", "teacher", "prompt", "parents", "round")}


def test_round_stands_in_for_a_missing_teacher_and_nan_is_dropped():
    rec = new_record("Label this message.", "card lost", "lost_card", source="pool", round=3,
                     scores={"uncertainty": 0.42, "judge_score": math.nan})
    task = tasks.to_task(rec)
    assert task["predictions"][0]["model_version"] == "round-3"
    assert task["predictions"][0]["score"] == 0.42
    assert task["data"]["record"]["scores"]["judge_score"] is None    # NaN is not JSON


def test_no_output_means_an_empty_prediction():
    task = tasks.to_task(new_record("Write a haiku about rain.", "", None))
    assert task["data"]["output"] == ""
    assert task["predictions"][0]["result"] == []
    assert "score" not in task["predictions"][0]


def test_label_config_has_the_controls_the_pull_reads():
    xml, ref = tasks.label_config()
    assert ref.startswith("label_studio/review.xml@")
    root = ET.fromstring(xml)
    controls = {el.get("name"): el for el in root.iter() if el.get("name")}
    assert {"instruction", "input", "output", "verdict", "rating", "comment"} <= set(controls)
    assert controls["output"].tag == "TextArea" and controls["output"].get("editable") == "true"
    assert [c.get("alias") for c in controls["verdict"]] == ["accept", "reject"]
    assert controls["rating"].get("maxRating") == "5"
    assert controls["instruction"].get("value") == "$instruction"


def test_one_model_version_per_push():
    a = new_record("Say hi.", "", "hi", teacher="local", round=1)
    b = new_record("Say bye.", "", "bye", teacher="openai:gpt-4o-mini", round=1)
    seed = new_record("Say yes.", "", "yes", source="seed", round=0)
    assert tasks.model_version([a, a]) == "local"
    assert tasks.model_version([a, b]) == "round-1"          # teachers differ, the round is shared
    assert tasks.model_version([a, b, seed]) == "mixed"
    assert tasks.to_task(b, "round-1")["predictions"][0]["model_version"] == "round-1"
