"""The loop's preference steps, for `train.objective: dpo | sft+dpo` (generators only).

- pairs: every verdict so far (labels.parquet) -> rounds/NNN/pairs.parquet (curate.build_pairs: an edit
  over the answer it replaced, a rejected answer against an accepted one to the same prompt).
- dpo: DPO on those pairs into adapter/, from the promoted adapter (dpo) or from this round's SFT
  adapter in sft/ (sft+dpo). The starting adapter is also DPO's reference model.

A round without pairs (round 1, or reviewers who only accepted) trains with SFT alone, and says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from seedloop.core.errors import ConfigError
from seedloop.core.tables import read_table, write_table
from seedloop.loop.manifest import file_hash, value_hash

if TYPE_CHECKING:
    from seedloop.loop.cycle import Round

ADAPTER_OUTPUTS = ["adapter/metrics.json", "adapter/adapter_model.safetensors"]


def objective_for_round(r: Round, task: str) -> str:
    """What this round runs: `train.objective`, or sft when there are no pairs to learn from yet."""
    objective = r.config["train"]["objective"]
    if objective == "sft":
        return "sft"
    if task != "generation":
        raise ConfigError(f"{r.ws.config_path}: 'train.objective' {objective} trains generators, but this round's "
                          f"student is a {task} model; set train.task: generation or train.objective: sft")
    r.step("pairs", value_hash([file_hash(r.path("labels.parquet"))]), ["pairs.parquet"], write_pairs, r)
    if not r.manifest.get("pairs", "pairs"):
        r.say(f"round {r.number} · no preference pairs yet (no edits or answered rejections): SFT only")
        return "sft"
    return objective


def write_pairs(r: Round) -> dict:
    from curate import build_pairs

    pairs, counts = build_pairs(read_table(r.path("labels.parquet")))
    write_table(pairs, r.path("pairs.parquet"))
    return {"pairs": pairs.height, "counts": dict(counts)}


def dpo_step(r: Round, base: str, start: Path | None, four_bit: bool, notes: dict) -> None:
    """DPO into adapter/ from `start` (None: fresh LoRA on the base); re-runs skip or start again."""
    from train.config import resolve

    settings = resolve(None, [], recipe="dpo", **{"four_bit": four_bit, **r.config["train"]["dpo"]})
    inputs = value_hash([file_hash(r.path("pairs.parquet")),
                         file_hash(start / "adapter_model.safetensors") if start else None, settings, base])
    r.step("dpo", inputs, ADAPTER_OUTPUTS, train_dpo_student, r, inputs, base, start, settings, notes,
           doing=f" on {r.manifest.get('pairs', 'pairs')} pairs" + (f", from {start}" if start else ""))


def train_dpo_student(r: Round, inputs: str, base: str, start: Path | None, settings: dict, notes: dict) -> dict:
    from train.dpo import train_dpo

    out = r.path("adapter")
    if not r.manifest.started("dpo", inputs) and out.exists():
        shutil.rmtree(out)   # a run on other inputs
    m = train_dpo(r.path("pairs.parquet"), base, out, init_adapter=start, resume=True, **settings)
    return {**notes, "objective": "dpo", "init_adapter": str(start) if start else None, "steps": m.get("steps"),
            "train_loss": m.get("train_loss"), "eval_margin_before": m.get("eval_margin_before"),
            "eval_margin_after": m.get("eval_margin_after")}
