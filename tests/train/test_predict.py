"""`seedloop predict`: classifier labels and probabilities known in advance, generator answers checked
against plain unbatched `model.generate`, and a run killed between chunks resumed by record id."""

from __future__ import annotations

import math

import polars as pl
import pytest
import torch

from seedloop.core.record import new_record, to_frame
from seedloop.core.tables import write_table
from tests.conftest import run_cli
from tests.train.test_classifier import _edit_head, tiny_encoder, topic_frame  # noqa: F401 (fixture)


class Killed(Exception):
    pass


def _kill_after(rows: int):
    def progress(done, total=None):
        if done >= rows:
            raise Killed
    return progress


@pytest.fixture(scope="module")
def classifier(tiny_encoder, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    from train.classifier import train_classifier

    folder = tmp_path_factory.mktemp("predict") / "clf"
    train_classifier(topic_frame(8), tiny_encoder, folder, epochs=15, lr=3e-3, head_lr=3e-2)
    return folder


def test_cli_predicts_labels_of_unseen_messages(classifier, tmp_path):
    test = topic_frame(4, offset=40)
    write_table(test, tmp_path / "test.jsonl")
    done = run_cli("predict", "--model", classifier, "--data", tmp_path / "test.jsonl", "--out", tmp_path / "p.parquet")
    assert done.returncode == 0, done.stderr
    assert "classification: 12 rows" in done.stderr
    pred = pl.read_parquet(tmp_path / "p.parquet")
    assert pred.columns == ["id", "instruction", "input", "label", "probability"]
    assert pred["id"].to_list() == test["id"].to_list()                   # input order
    assert pred["label"].to_list() == test["output"].to_list()            # the task is separable: all right
    assert all(1 / 3 < p <= 1.0 for p in pred["probability"])
    assert not list(tmp_path.glob(".p.parquet.parts"))                    # no leftovers


def test_edited_head_gives_known_probabilities_and_a_new_model_starts_over(classifier, tmp_path):
    from train.export import copy_adapter
    from train.predict import predict

    folder = tmp_path / "flat"
    copy_adapter(classifier, folder)
    _edit_head(folder, torch.zeros_like, torch.zeros_like)                # every logit 0: each label 1/3
    test = topic_frame(3, offset=60)
    with pytest.raises(Killed):
        predict(folder, test, tmp_path / "p.parquet", chunk_rows=4, progress=_kill_after(4))
    _edit_head(folder, torch.zeros_like, lambda b: torch.tensor([0.0, 50.0, 0.0]))   # label 1 wins surely
    summary = predict(folder, test, tmp_path / "p.parquet", chunk_rows=4)
    assert summary["resumed"] == 0 and summary["predicted"] == 9          # the flat head's chunk is not reused
    pred = pl.read_parquet(tmp_path / "p.parquet")
    assert set(pred["label"]) == {"tool"} and pred["probability"].min() > 1 - 1e-12   # labels: fruit, tool, vehicle
    _edit_head(folder, torch.zeros_like, torch.zeros_like)
    predict(folder, test, tmp_path / "flat.jsonl")
    assert pl.read_ndjson(tmp_path / "flat.jsonl")["probability"].to_list() == pytest.approx([1 / 3] * 9, abs=1e-6)


def test_killed_run_resumes_by_id_and_gives_the_same_table(classifier, tmp_path):
    from train.predict import predict

    test = topic_frame(5, offset=70)                                      # 15 rows, chunks of 4
    whole = predict(classifier, test, tmp_path / "whole.parquet", chunk_rows=4)
    assert whole == {"rows": 15, "predicted": 15, "resumed": 0, "task": "classification"}
    with pytest.raises(Killed):
        predict(classifier, test, tmp_path / "p.parquet", chunk_rows=4, progress=_kill_after(8))
    assert not (tmp_path / "p.parquet").exists()                          # nothing half-written
    again = predict(classifier, test, tmp_path / "p.parquet", chunk_rows=4)
    assert again["resumed"] == 8 and again["predicted"] == 7              # nothing predicted twice
    assert pl.read_parquet(tmp_path / "p.parquet").equals(pl.read_parquet(tmp_path / "whole.parquet"))


def test_bad_output_suffix_is_refused_before_any_work(classifier, tmp_path):
    write_table(topic_frame(1), tmp_path / "t.parquet")
    done = run_cli("predict", "--model", classifier, "--data", tmp_path / "t.parquet", "--out", tmp_path / "p.csv")
    assert done.returncode != 0 and "p.csv" in done.stderr and ".parquet or .jsonl" in done.stderr
    assert not list(tmp_path.glob("*p.csv*"))


def _plain_greedy(model, tokenizer, record: dict, max_new_tokens: int) -> tuple[str, float | None]:
    """One prompt at a time, no padding: transformers' generate and its scores, nothing of ours but the
    prompt text and the stop tokens."""
    from train.chat import render_prompt

    stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    ids = tokenizer(render_prompt(record, tokenizer), add_special_tokens=False, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                         pad_token_id=tokenizer.pad_token_id, output_scores=True, return_dict_in_generate=True)
    new = out.sequences[0, ids["input_ids"].shape[1]:].tolist()
    n = next((i for i, t in enumerate(new) if t in stop), len(new))
    logps = [torch.log_softmax(out.scores[i][0].float(), -1)[new[i]].item() for i in range(n)]
    return tokenizer.decode(new[:n], skip_special_tokens=True).strip(), (sum(logps) / n if n else None)


def test_generator_answers_match_plain_generate(tmp_path):
    from train.inference import load_for_inference
    from train.predict import predict

    records = [new_record("Name a colour.", ""), new_record("What is 2 + 2?", ""),
               new_record("Translate to French: good morning", ""), new_record("Say hello in one word.", "")]
    summary = predict("local", to_frame(records), tmp_path / "p.parquet", batch_size=4, max_new_tokens=8)
    assert summary["task"] == "generation"
    pred = pl.read_parquet(tmp_path / "p.parquet")
    assert pred.columns == ["id", "instruction", "input", "text", "mean_logprob", "tokens"]
    model, tokenizer = load_for_inference("local")
    for record, row in zip(records, pred.iter_rows(named=True)):
        text, mean_logprob = _plain_greedy(model, tokenizer, record, 8)
        assert row["text"] == text and row["text"]
        assert math.isclose(row["mean_logprob"], mean_logprob, abs_tol=1e-3)
        assert row["mean_logprob"] < 0 and 1 <= row["tokens"] <= 8
