"""`seedloop curate --hf-dataset`: the kept rows' dataset card says which settings kept them, how many
rows each rule dropped and which files they were decontaminated against. Embeddings come from a
hash (through the Embedder's `encode` hook), so no model is loaded and no two rows are semantic twins."""

from __future__ import annotations

import hashlib
import json

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

from curate.embed import Embedder
from seedloop.cli import app
from seedloop.core.tables import read_table

LEAKED = "Explain how long an international bank transfer usually takes to arrive in the account of the recipient"
SEEDS = ["How do I reset my card PIN at an ATM?", "Why was my transfer to a friend declined yesterday?",
         "Can I order a replacement card while abroad on holiday?"]


def hashed_vectors(keys: list[str], texts: list[str], store) -> dict[str, np.ndarray]:
    """Unit vectors drawn from each text's hash: far apart (cosine well under 0.9 in 64 dimensions)."""
    out = {}
    for key, text in zip(keys, texts):
        rng = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
        v = rng.standard_normal(64).astype(np.float32)
        out[key] = v / np.linalg.norm(v)
    store(keys, np.stack([out[k] for k in keys]))
    return out


def hashed_embedder(executor, ray_address):
    return lambda model, *, cache: Embedder(model, cache=cache, encode=hashed_vectors)


def table(tmp_path):
    seeds = [{"instruction": s, "output": "Here is how.", "source": "seed", "status": "accepted"} for s in SEEDS]
    made = {"fees": "What fees apply when I withdraw cash in another currency?",
            "copy": "what fees apply when I withdraw cash in another currency",   # exact duplicate
            "refusal": "Which card is best for a teenager?", "leak": LEAKED,
            "joint": "Which documents do I need to open a joint savings account?"}
    rows = seeds + [{"instruction": text, "source": "generated", "status": "pending", "teacher": "openai:gpt-x",
                     "prompt": "self_instruct/instructions@abc123",
                     "output": "I'm sorry, but I cannot help with that." if key == "refusal" else "It depends."}
                    for key, text in made.items()]
    path = tmp_path / "generated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval.jsonl").write_text(json.dumps({"instruction": LEAKED, "output": "A few days."}) + "\n")
    return path


def test_curate_card_has_settings_drops_and_decontamination(tmp_path, monkeypatch):
    monkeypatch.setattr("seedloop.cli.curate._embedder", hashed_embedder)
    args = ["curate", str(table(tmp_path)), "--out", str(tmp_path / "kept.parquet"), "--against",
            str(tmp_path / "eval.jsonl"), "--threshold", "0.9", "--cache", str(tmp_path / "cache.sqlite"),
            "--hf-dataset", str(tmp_path / "hf"), "--license", "apache-2.0"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    card = DatasetCard.load(tmp_path / "hf" / "README.md")
    facts = card.data.seedloop
    assert card.data.license == "apache-2.0" and card.data.tags == ["seedloop", "curate", "synthetic"]
    assert facts["rows"] == read_table(tmp_path / "kept.parquet").height == 5
    assert facts["by_source"] == {"seed": 3, "generated": 2} and facts["teachers"] == {"openai:gpt-x": 2}
    assert facts["prompts"] == [{"template": "self_instruct/instructions", "hash": "abc123", "rows": 2}]
    assert facts["dropped"] == {"contaminated_ngram": 1, "exact_duplicate": 1, "refusal": 1}
    assert facts["decontamination"] == ["eval.jsonl"] and facts["sources"] == ["generated.jsonl"]
    settings = facts["settings"]
    assert {k: settings[k] for k in ("threshold", "keep", "on", "heuristics", "against_threshold", "ngram")} == {
        "threshold": 0.9, "keep": "seed-first", "on": "prompt", "heuristics": True, "against_threshold": 0.95,
        "ngram": 13}
    assert settings["model"] and settings["index"] and "judge" not in settings and "select" not in settings
    assert "| contaminated_ngram | 1 |" in card.text and "- `eval.jsonl`" in card.text
    assert datasets.load_from_disk(str(tmp_path / "hf")).num_rows == 5


@pytest.mark.parametrize("command", [
    ["generate", "--seeds", "s.jsonl", "--out", "o.jsonl"], ["curate", "t.jsonl", "--out", "o.jsonl"],
    ["review", "pull", "--project", "p", "--out", "o.jsonl"]], ids=["generate", "curate", "review pull"])
def test_a_bad_licence_is_a_usage_error_before_any_work(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--hf-dataset", "hf", "--license", "CC BY 4.0"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "--license" in result.output and "cc-by-4.0" in result.output
    assert list(tmp_path.iterdir()) == []
