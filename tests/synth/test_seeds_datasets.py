"""Seeds from a `datasets` folder (`Dataset.save_to_disk`): the same records as from a file, and a
clear error for a folder that is not one."""

from __future__ import annotations

import json

import datasets
import pytest
from typer.testing import CliRunner

from seedloop.cli import app
from seedloop.core.errors import InputError
from seedloop.core.tables import export_hf
from synth.seeds import load_seeds
from tests.conftest import EXAMPLE_SEEDS

CHAT = [{"messages": [{"role": "user", "content": "Is my card blocked?"},
                      {"role": "assistant", "content": "Let me check."}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Fees?"}]}]


def saved(tmp_path, rows: list[dict], name: str = "seeds") -> str:
    folder = tmp_path / name
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    return folder


def test_a_saved_dataset_gives_the_same_seeds_as_the_file(tmp_path):
    rows = [json.loads(line) for line in EXAMPLE_SEEDS.read_text().splitlines() if line.strip()]
    from_folder, from_file = load_seeds(saved(tmp_path, rows)), load_seeds(EXAMPLE_SEEDS)
    assert from_folder.height == from_file.height > 10
    assert from_folder.equals(from_file)


def test_chat_turns_survive_the_arrow_round_trip(tmp_path):
    df = load_seeds(saved(tmp_path, CHAT))
    assert df["instruction"].to_list() == ["Is my card blocked?", "Fees?"]
    assert df["output"].to_list() == ["Let me check.", None]
    assert [len(m) for m in df["messages"].to_list()] == [2, 2]


def test_a_folder_seedloop_exported_reads_back_as_seeds(tmp_path):
    seeds = load_seeds(EXAMPLE_SEEDS)
    folder = export_hf(seeds, tmp_path / "hf", stage="generate")   # with its README.md inside
    assert load_seeds(folder)["id"].to_list() == seeds["id"].to_list()


def test_a_plain_folder_is_called_a_folder(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.jsonl").write_text('{"instruction": "x"}\n')
    with pytest.raises(InputError, match="is a directory.*save_to_disk") as err:
        load_seeds(tmp_path / "notes")
    assert err.value.file == str(tmp_path / "notes")


def test_a_dataset_dict_names_its_split_folders(tmp_path):
    split = datasets.Dataset.from_list([{"instruction": "Hi"}])
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputError, match=r"splits: test, train.*dd/test"):
        load_seeds(tmp_path / "dd")


def test_an_empty_dataset_is_an_error(tmp_path):
    folder = tmp_path / "empty"
    datasets.Dataset.from_dict({"instruction": []}).save_to_disk(str(folder))
    with pytest.raises(InputError, match="the dataset holds no rows"):
        load_seeds(folder)


def test_a_broken_dataset_folder_names_the_folder(tmp_path):
    folder = saved(tmp_path, CHAT)
    for arrow in folder.glob("*.arrow"):
        arrow.write_bytes(b"not arrow")
    with pytest.raises(InputError, match="cannot read the `datasets` folder") as err:
        load_seeds(folder)
    assert err.value.file == str(folder)


def test_seeds_inspect_reads_a_datasets_folder(tmp_path):
    folder = saved(tmp_path, CHAT)
    result = CliRunner().invoke(app, ["seeds", "inspect", str(folder)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "datasets" in result.output and "chat (detected)" in result.output and "Is my card blocked?" in result.output
