"""The DPO recipe: preference pairs in, a LoRA adapter out. `train_dpo(pairs, base, out)` reads top to
bottom, and so does this file:

  1. data: the pairs (curate.read_pairs), split by prompt into training and held-out pairs
  2. model: the base in 4-bit NF4 (or plain) with fresh LoRA, or the SFT adapter to warm-start from,
     set up exactly as the SFT recipe does (recipe.setup_model)
  3. the held-out margin before: log p(chosen) - log p(rejected) under the starting model
  4. TRL's DPOTrainer. The reference model is the starting point: for a warm start TRL keeps a frozen
     copy of the adapter (peft adapter "ref"); for fresh LoRA (zero at the start) it is the base
  5. the held-out margin after; save adapter, tokenizer, config, metrics, loss curve and model card

Why TRL and not our own loss: its DPOTrainer runs on a bitsandbytes 4-bit base on a CPU (checked with
TRL 1.16, bitsandbytes 0.50, peft 0.21), so the issue's condition for writing our own does not hold.
The bitsandbytes eval-mode bug (train/models.py) is kept off by load_base, also for TRL's reference
passes, which run under no_grad.

Not handled: resuming a killed DPO run (runs are short; `resume=True` returns a finished run's metrics
and starts an unfinished one again), multi-process training, and checkpoints.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import polars as pl
import torch

from seedloop.core.errors import InputError
from train.chat import setup_chat_template
from train.config import resolve
from train.inference import response_logprobs
from train.models import pick_dtype, resolve_base
from train.outputs import write_outputs
from train.recipe import load_tokenizer, setup_model


def train_dpo(pairs: str | Path | pl.DataFrame, base: str | Path = "local", out: str | Path = "runs/dpo", *,
              init_adapter: str | Path | None = None, resume: bool = False,
              progress: Callable[[dict], None] | None = None, **settings) -> dict:
    """DPO on `pairs` (a pairs table or its path); the adapter and metrics land in `out`. The keyword
    settings are the keys of train/configs/dpo.yaml. Returns the metrics also written to OUT/metrics.json,
    among them the held-out margin before and after (eval_margin_before, eval_margin_after)."""
    say = progress or (lambda event: None)
    out = Path(out)
    if resume and (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    cfg = resolve(None, (), recipe="dpo", **settings)
    started = time.perf_counter()

    # 1. data -------------------------------------------------------------------------------------
    table = pairs if isinstance(pairs, pl.DataFrame) else _read(pairs)
    train_rows, eval_rows = split_pairs(table.to_dicts(), cfg["eval_fraction"], cfg["seed"])
    base_path = resolve_base(base)
    warm = init_adapter is not None and (Path(init_adapter) / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(Path(init_adapter) if warm else base_path)
    template = setup_chat_template(tokenizer, cfg["chat_template"])

    # 2. model ------------------------------------------------------------------------------------
    torch.manual_seed(cfg["seed"])
    model = setup_model(base_path, four_bit=cfg["four_bit"], dtype=cfg["dtype"], lora_r=cfg["lora_r"],
                        lora_alpha=cfg["lora_alpha"], lora_dropout=cfg["lora_dropout"],
                        target_modules=cfg["target_modules"], init_adapter=init_adapter, gradient_checkpointing=False)

    # 3. the held-out margin before ---------------------------------------------------------------
    before = pair_margins(model, tokenizer, eval_rows)

    # 4. DPO --------------------------------------------------------------------------------------
    trainer = _trainer(model, tokenizer, cfg, train_rows, say, len(eval_rows))
    try:
        result = trainer.train()
    finally:
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)   # TRL's scratch folder (saves nothing)

    # 5. the held-out margin after; save ----------------------------------------------------------
    if "ref" in model.peft_config:
        model.delete_adapter("ref")   # TRL's frozen reference copy; the adapter to keep is "default"
    after = pair_margins(model, tokenizer, eval_rows)
    metrics = _metrics(trainer, result, cfg, table, train_rows, eval_rows, before, after, template,
                       time.perf_counter() - started)
    record = {"format": 1, "objective": "dpo", "base": str(base), "base_path": str(base_path),
              "init_adapter": str(init_adapter) if init_adapter else None, **cfg,
              "data": None if isinstance(pairs, pl.DataFrame) else str(pairs), "chat_template_source": template}
    write_outputs(out, model, tokenizer, record, metrics)
    say({"event": "done", **metrics})
    return metrics


def _read(path) -> pl.DataFrame:
    from curate import read_pairs

    return read_pairs(path)


def split_pairs(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(training, held-out) pairs; every pair of one prompt lands on the same side."""
    if not rows:
        raise InputError("no preference pairs to train on (`seedloop pairs` makes them from edits and rejections)")
    prompts = sorted({r["id"] or str(r["prompt"]) for r in rows})
    random.Random(seed).shuffle(prompts)
    n_eval = min(len(prompts) - 1, math.ceil(len(prompts) * fraction)) if fraction > 0 else 0
    held = set(prompts[:n_eval])
    return ([r for r in rows if (r["id"] or str(r["prompt"])) not in held],
            [r for r in rows if (r["id"] or str(r["prompt"])) in held])


def pair_margins(model, tokenizer, rows: list[dict], batch_size: int = 8) -> dict | None:
    """Mean of log p(chosen) - log p(rejected) (summed over answer tokens, end-of-turn included) and the
    share of pairs where chosen is the more likely, under `model` in eval mode; None without pairs."""
    if not rows:
        return None
    records = [{"id": r["id"], "messages": [*r["prompt"], {"role": "assistant", "content": r[side]}]}
               for r in rows for side in ("chosen", "rejected")]
    was_training = model.training
    model.eval()
    scores = response_logprobs(model, tokenizer, records, batch_size=batch_size)
    model.train(was_training)
    margins = [scores[2 * i][0] - scores[2 * i + 1][0] for i in range(len(rows))]
    return {"margin": sum(margins) / len(margins), "accuracy": sum(m > 0 for m in margins) / len(margins)}


def _trainer(model, tokenizer, cfg: dict, rows: list[dict], say, n_eval: int):
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from curate import trl_rows

    steps_per_epoch = math.ceil(len(rows) / (cfg["batch_size"] * cfg["grad_accum"]))
    total = cfg["max_steps"] or cfg["epochs"] * steps_per_epoch
    args = DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="seedloop-dpo-"), use_cpu=not torch.cuda.is_available(),
        bf16=pick_dtype(cfg["dtype"]) == torch.bfloat16, per_device_train_batch_size=cfg["batch_size"],
        gradient_accumulation_steps=cfg["grad_accum"], num_train_epochs=cfg["epochs"], max_steps=total,
        learning_rate=cfg["lr"], lr_scheduler_type="linear", warmup_steps=math.ceil(total * cfg["warmup_ratio"]),
        weight_decay=cfg["weight_decay"], max_grad_norm=cfg["max_grad_norm"], beta=cfg["beta"],
        loss_type=[cfg["loss_type"]], max_length=cfg["max_length"], seed=cfg["seed"], report_to=[],
        save_strategy="no", logging_steps=1, gradient_checkpointing=False, disable_tqdm=True,
        dataloader_num_workers=0)
    dataset = Dataset.from_list(trl_rows(pl.DataFrame(rows)))
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[_progress_callback(say, len(rows), n_eval)])
    trainer.remove_callback(PrinterCallback)   # it prints every log dict; progress goes through `say`
    return trainer


def _progress_callback(say, n_train: int, n_eval: int):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            say({"event": "start", "total": state.max_steps, "step": 0, "train_examples": n_train,
                 "eval_examples": n_eval})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                say({"event": "step", "step": state.global_step, "loss": float(logs["loss"]), "total": state.max_steps})

    return Progress()


def _metrics(trainer, result, cfg: dict, table: pl.DataFrame, train_rows, eval_rows, before, after, template,
             seconds: float) -> dict:
    logs = [row for row in trainer.state.log_history if "loss" in row]
    runtime = result.metrics.get("train_runtime") or seconds
    tokens = max((row.get("num_tokens", 0) for row in logs), default=0)
    return {
        "objective": "dpo", "task": "generation", "steps": trainer.state.global_step,
        "train_loss": result.training_loss, "train_pairs": len(train_rows), "eval_pairs": len(eval_rows),
        "eval_margin_before": before and before["margin"], "eval_margin_after": after and after["margin"],
        "eval_pair_accuracy_before": before and before["accuracy"],
        "eval_pair_accuracy_after": after and after["accuracy"],
        "final_reward_margin": logs[-1].get("rewards/margins") if logs else None,
        "tokens_per_second": round(tokens / runtime, 2) if runtime else None, "chat_template": template,
        "seconds": round(seconds, 2),
        # rewards are beta * (log p - log p_ref): 0 at the first step when the reference is the starting point
        "history": [{"step": row["step"], "loss": row["loss"], "reward_chosen": row.get("rewards/chosen"),
                     "reward_margin": row.get("rewards/margins")} for row in logs], "evals": [],
        "data": {"lineage": pair_lineage(table)},
    }


def pair_lineage(table: pl.DataFrame) -> dict:
    """What the pairs came from (by origin, reviewer and round, as their dataset card counts them), for
    metrics.json and the model card."""
    from seedloop.core.dataset_card import summarize

    return {**summarize(table), "summary": f"{table.height} preference pairs (chosen against rejected)."}
