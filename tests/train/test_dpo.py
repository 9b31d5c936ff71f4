"""DPO (train/dpo.py, `seedloop train --objective dpo`) on a tiny Llama with the 4-bit base and LoRA of SFT.

The margin log p(chosen) - log p(rejected) on held-out pairs (prompts never trained on) must rise;
a warm start's reference is the SFT adapter as it was (TRL's first-step rewards are exactly 0, which
they are not against the bare base); the output folder is an adapter the rest of seedloop loads.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from curate.pairs import PAIR_SCHEMA
from seedloop.cli import app
from seedloop.core.tables import write_table


def pairs_frame(n: int = 24) -> pl.DataFrame:
    rows = [{"id": f"p{i}", "prompt": [{"role": "user", "content": f"Question {i}: can you help me?"}],
             "chosen": "Yes, gladly.", "rejected": "No.", "origin": "edit", "chosen_id": f"p{i}",
             "rejected_id": f"p{i}", "reviewer": "ann@x" if i % 2 else "bob@x", "round": 1, "gap": None}
            for i in range(n)]
    return pl.DataFrame(rows, schema=PAIR_SCHEMA)


def test_dpo_raises_the_held_out_margin(tiny_model, tmp_path):
    from train.dpo import train_dpo

    m = train_dpo(pairs_frame(), tiny_model, tmp_path / "dpo", max_steps=12, lr=5e-3, eval_fraction=0.25)
    assert m["train_pairs"] == 18 and m["eval_pairs"] == 6
    # on prompts it never saw, the chosen answer gained on the rejected one
    assert m["eval_margin_after"] > m["eval_margin_before"] + 3, m
    assert m["history"][-1]["loss"] < m["history"][0]["loss"]
    saved = sorted(p.name for p in (tmp_path / "dpo").iterdir())
    assert "adapter_model.safetensors" in saved and "ref" not in saved   # TRL's reference copy is not kept
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert "24 preference pairs" in card and "| ann@x | 12 |" in card and "| edit | 24 |" in card


@pytest.mark.slow
def test_warm_start_from_sft_is_the_reference_and_cli_runs(tiny_model, tmp_path):
    from train import load_for_inference, response_logprobs, train
    from train.dpo import pair_margins

    sft = tmp_path / "sft"
    records = pl.DataFrame([{"instruction": f"Question {i}: can you help me?", "output": "No.", "status": "accepted"}
                            for i in range(16)])
    train(records, tiny_model, sft, report_to="none", max_steps=8, lr=5e-3, batch_size=4,
          gradient_checkpointing=False, eval_fraction=0)
    write_table(pairs_frame(), tmp_path / "pairs.parquet")
    out = tmp_path / "dpo"
    result = CliRunner().invoke(app, ["train", "--objective", "dpo", "--data", str(tmp_path / "pairs.parquet"),
                                      "--base", str(tiny_model), "--init-adapter", str(sft), "--out", str(out),
                                      "max_steps=4", "lr=5e-3", "eval_fraction=0.25"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # the policy starts equal to its reference, the SFT adapter (up to bf16 rounding): against the bare base
    # the first rewards would be beta times what SFT moved the chosen answers' log-probability
    assert metrics["history"][0]["reward_chosen"] == pytest.approx(0, abs=1e-4)
    assert metrics["history"][-1]["reward_margin"] > 0
    pairs = pairs_frame().to_dicts()
    chosen = [{"messages": [*p["prompt"], {"role": "assistant", "content": p["chosen"]}]} for p in pairs]
    model, tokenizer = load_for_inference(sft)   # loaded the way evaluate loads it
    before = pair_margins(model, tokenizer, pairs)
    sft_logps = [s for s, _ in response_logprobs(model, tokenizer, chosen)]
    model, tokenizer = load_for_inference(tiny_model)
    base_logps = [s for s, _ in response_logprobs(model, tokenizer, chosen)]
    assert 0.1 * abs(sum(sft_logps) - sum(base_logps)) / len(pairs) > 0.01
    assert before["margin"] < 0   # SFT learnt the rejected answer
    assert json.loads((out / "adapter_config.json").read_text())["r"] == json.loads(
        (sft / "adapter_config.json").read_text())["r"]
    model, tokenizer = load_for_inference(out)   # evaluate, predict, serve and export load it this way
    assert pair_margins(model, tokenizer, pairs)["margin"] > before["margin"]


def test_dpo_refuses_sft_only_options(tmp_path):
    write_table(pairs_frame(4), tmp_path / "pairs.parquet")
    result = CliRunner().invoke(app, ["train", "--objective", "dpo", "--data", str(tmp_path / "pairs.parquet"),
                                      "--out", str(tmp_path / "o"), "--task", "classification"],
                                env={"COLUMNS": "200"})
    assert result.exit_code != 0 and "--task: not used with --objective dpo" in result.output
    result = CliRunner().invoke(app, ["train", "--objective", "dpo", "--data", str(tmp_path / "pairs.parquet"),
                                      "--out", str(tmp_path / "o"), "beta=-1"], env={"COLUMNS": "200"})
    assert result.exit_code != 0 and "'beta' should be positive" in result.output
    assert not (tmp_path / "o").exists()
