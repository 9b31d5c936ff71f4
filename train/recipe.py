"""The QLoRA recipe: `run_recipe(cfg)` reads top to bottom, and this file follows it, a section each:

  1. data: records -> chat-rendered examples (response-only labels), held-out split: setup_data
  2. model: base in 4-bit NF4 (or plain), LoRA on every linear layer, or warm-started from an adapter:
     setup_accelerator, setup_model
  3. optimizer and schedule; restore a checkpoint on resume: setup_optimizer, restore_checkpoint
  4. an explicit loop: step, evaluate, stop early, checkpoint: train_loop (take_step, eval_and_track,
     checkpoint)
  5. save: adapter, tokenizer + chat template, resolved config, metrics, loss curve: save
  6. clean up

`train(data, base, out, **settings)` is the entry point for callers: plain keyword arguments (the keys
of train/configs/qlora.yaml) in, one TrainConfig (train/recipe_config.py) built, the recipe run.

Side concerns live in helpers: checkpoints.py, tracking.py, loss.py, data.py. Multi-GPU runs go
through accelerate's DDP (`accelerate launch --config_file train/configs/accelerate/ddp.yaml -m
seedloop train ...`): each process takes its share of every micro-batch, the step's token counts are
summed over processes so a step means the same as on one, and only the main process writes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import polars as pl
import torch

from seedloop.core.errors import ConfigError, InputError
from train import checkpoints as ckpt
from train.chat import setup_chat_template
from train.data import collate, plan_epoch, read_examples
from train.loss import autocast, count_targets, response_nll
from train.models import disable_cpu_4bit_repack, load_base, pick_dtype, resolve_base
from train.outputs import write_outputs
from train.recipe_config import TrainConfig
from train.tracking import open_tracker, peak_memory_mb


def train(data: str | Path | pl.DataFrame, base: str | Path = "local", out: str | Path = "runs/train", *,
          eval_data: str | Path | pl.DataFrame | None = None, init_adapter: str | Path | None = None,
          resume: bool = False, progress: Callable[[dict], None] | None = None, **settings) -> dict:
    """Fine-tune `base` on the records in `data`; write the adapter and its metrics to `out`.

    The keyword settings are the keys of train/configs/qlora.yaml (same defaults; see TrainConfig).
    `progress`, if given, receives a dict per event (`event`: start, step, eval, note, done). Returns
    the metrics that are also written to OUT/metrics.json. With `resume=True` a finished run returns
    its metrics and an interrupted one continues from its latest checkpoint.
    """
    config = TrainConfig(data=data, base=base, out=out, eval_data=eval_data, init_adapter=init_adapter,
                         resume=resume, **settings)
    return run_recipe(config, progress)


def run_recipe(cfg: TrainConfig, progress: Callable[[dict], None] | None = None) -> dict:
    """One training run as `cfg` says, sections 1 to 6 of the module docstring; returns the metrics."""
    say = progress or (lambda event: None)
    if cfg.resume and (cfg.out / "metrics.json").is_file():
        return _finished_metrics(cfg.out)
    _check_out_folder(cfg.out, cfg.resume)

    # 1. data ------------------------------------------------------------------------------------
    base_path = resolve_base(cfg.base)
    examples = setup_data(cfg, base_path, say)

    # 2. model -----------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    accelerator, amp = setup_accelerator(cfg)
    cfg = _adopt_adapter_shape(cfg, say)
    model = setup_model(base_path, four_bit=cfg.four_bit, dtype=cfg.dtype, lora_r=cfg.lora_r,
                         lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=cfg.target_modules,
                         init_adapter=cfg.init_adapter, gradient_checkpointing=cfg.gradient_checkpointing)
    record = run_record(cfg, base_path, examples)

    # 3. optimizer, schedule, resume -------------------------------------------------------------
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler, total_steps = setup_optimizer(cfg, trainable, len(examples.train))
    state, best_adapter = restore_checkpoint(cfg, record, model, optimizer, scheduler, say)
    model, optimizer = accelerator.prepare(model, optimizer)
    tracker = _open_tracker(cfg, record, examples, accelerator)
    r = Run(cfg=cfg, say=say, examples=examples, record=record, accelerator=accelerator, model=model,
            unwrapped=accelerator.unwrap_model(model), trainable=trainable, optimizer=optimizer,
            scheduler=scheduler, amp=amp, total_steps=total_steps, tracker=tracker, state=state,
            best_adapter=best_adapter)
    say({"event": "start", "total": total_steps, "step": state.step, "train_examples": len(examples.train),
         "eval_examples": len(examples.eval), **examples.report["counts"]})

    try:
        train_loop(r)        # 4. the loop
        metrics = save(r)    # 5. save
    except BaseException:
        tracker.finish("KILLED")
        raise
    # 6. clean up --------------------------------------------------------------------------------
    tracker.finish()
    accelerator.end_training()
    return metrics


@dataclass
class Examples:
    """Section 1's result: the tokenizer, and the tokenized training and held-out sets."""

    tokenizer: Any
    template: str      # where the chat template came from: model, chatml, or a .jinja file
    train: list
    eval: list
    report: dict       # rows, skip counts, fingerprint, example counts: metrics.json's `data`

    @property
    def pad_id(self) -> int:
        tokenizer = self.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


@dataclass
class Run:
    """What sections 1-3 set up and the loop and save steps use; `state` and `best_adapter` change."""

    cfg: TrainConfig
    say: Callable[[dict], None]
    examples: Examples
    record: dict         # the settings as saved (train_config.yaml, checkpoints) and logged
    accelerator: Any
    model: Any           # as accelerate prepared it (DDP-wrapped under several processes): train steps
    unwrapped: Any       # the peft model: evaluated, checkpointed, saved
    trainable: list
    optimizer: Any
    scheduler: Any
    amp: torch.dtype     # the compute dtype
    total_steps: int
    tracker: Any
    state: ckpt.TrainState
    best_adapter: dict | None


# 1. data ----------------------------------------------------------------------------------------

def setup_data(cfg: TrainConfig, base_path: Path, say) -> Examples:
    """The tokenizer and its chat template, then the records read, split and tokenized."""
    # a warm start keeps the previous round's tokenizer and chat template
    warm = cfg.init_adapter and (Path(cfg.init_adapter) / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(Path(cfg.init_adapter) if warm else base_path)
    template = setup_chat_template(tokenizer, cfg.chat_template)
    if template != "model":
        say({"event": "note", "text": f"chat template: {template} (the model has none of its own)"})
    report, train_set, eval_set = read_examples(cfg.data, cfg.eval_data, tokenizer, max_length=cfg.max_length,
                                                overlong=cfg.overlong, include_rejected=cfg.include_rejected,
                                                eval_fraction=cfg.eval_fraction, seed=cfg.seed)
    return Examples(tokenizer, template, train_set, eval_set, report)


# 2. model ---------------------------------------------------------------------------------------

def setup_accelerator(cfg: TrainConfig) -> tuple:
    """accelerate's Accelerator (one process, or DDP under `accelerate launch`) and the compute dtype."""
    from accelerate import Accelerator

    amp = pick_dtype(cfg.dtype)   # the compute dtype: bf16 where the hardware has it
    # fp16 needs loss scaling, which accelerate does in backward(); bf16 and fp32 need none
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              mixed_precision="fp16" if amp == torch.float16 else "no")
    _refuse_sharding(accelerator)
    if accelerator.num_processes > cfg.batch_size:
        raise ConfigError(f"batch_size {cfg.batch_size} is smaller than the {accelerator.num_processes} processes; "
                          "raise it")
    return accelerator, amp


def _adopt_adapter_shape(cfg: TrainConfig, say) -> TrainConfig:
    """A warm start keeps the previous adapter's shape; say so if the settings differ."""
    if not cfg.init_adapter:
        return cfg
    shape = _adapter_shape(Path(cfg.init_adapter))
    if shape == {"lora_r": cfg.lora_r, "lora_alpha": cfg.lora_alpha}:
        return cfg
    say({"event": "note", "text": f"warm start: the adapter's {shape} replace the configured LoRA shape"})
    return replace(cfg, **shape)


def run_record(cfg: TrainConfig, base_path: Path, examples: Examples) -> dict:
    """The settings as saved in train_config.yaml and in checkpoints (a resume must match them): the
    config, plus what the run found (the base's folder, the data's fingerprint, the chat template)."""
    return {"format": 1, "base": str(cfg.base), "init_adapter": str(cfg.init_adapter or "") or None,
            **cfg.settings(), "data": _describe(cfg.data), "eval_data": _describe(cfg.eval_data),
            "base_path": str(base_path), "data_fingerprint": examples.report["fingerprint"],
            "chat_template_source": examples.template}


# 3. optimizer, schedule, resume -----------------------------------------------------------------

def setup_optimizer(cfg: TrainConfig, trainable: list, train_examples: int) -> tuple:
    """AdamW over the LoRA weights, the learning-rate schedule, and the number of optimizer steps."""
    from transformers import get_scheduler

    steps_per_epoch = math.ceil(train_examples / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=round(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    return optimizer, scheduler, total_steps


def restore_checkpoint(cfg: TrainConfig, record: dict, model, optimizer, scheduler, say) -> tuple:
    """(loop state, best adapter so far): fresh ones, or on resume those of OUT's latest checkpoint,
    which also restores the adapter, the optimizer, the schedule and the random state."""
    from peft import set_peft_model_state_dict

    last = ckpt.latest_checkpoint(cfg.out) if cfg.resume else None
    if last is None:
        return ckpt.TrainState(), None
    state, adapter, best_adapter = ckpt.load_checkpoint(last, optimizer=optimizer, scheduler=scheduler,
                                                        config=record)
    set_peft_model_state_dict(model, adapter)
    say({"event": "note", "text": f"resumed from {last} (step {state.step})"})
    return state, best_adapter


def _open_tracker(cfg: TrainConfig, record: dict, examples: Examples, accelerator):
    tracker = open_tracker(cfg.report_to, cfg.out, tracking_uri=cfg.tracking_uri, experiment=cfg.experiment,
                           run_name=cfg.run_name, main_process=accelerator.is_main_process)
    tracker.log_params({**record, "train_examples": len(examples.train), "eval_examples": len(examples.eval)})
    return tracker


# 4. the loop ------------------------------------------------------------------------------------

def train_loop(r: Run) -> None:
    """Optimizer steps until total_steps or early stopping; evaluate every eval_every steps and at the
    end, checkpoint every save_every steps. A resumed run goes on from its checkpoint's place in its epoch."""
    cfg, state = r.cfg, r.state
    if state.step == 0:   # the starting point of the curve, and the adapter to beat
        eval_and_track(r)
    while state.step < r.total_steps and not state.stopped_early:
        plan = plan_epoch(len(r.examples.train), batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                          seed=cfg.seed, epoch=state.epoch)
        for micro_batches in plan[state.step_in_epoch:]:
            take_step(r, micro_batches)
            at_end = state.step >= r.total_steps
            if state.step % cfg.eval_every == 0 or at_end:
                eval_and_track(r)
            if r.accelerator.is_main_process and (state.step % cfg.save_every == 0 and not at_end):
                checkpoint(r)
            if at_end or state.stopped_early:
                break
        else:
            state.epoch, state.step_in_epoch = state.epoch + 1, 0


def take_step(r: Run, micro_batches: list) -> None:
    """One optimizer step on this process's share of `micro_batches`; recorded, logged and reported."""
    world, rank = r.accelerator.num_processes, r.accelerator.process_index
    batches = [collate([r.examples.train[i] for i in mb[rank::world]], pack=r.cfg.pack, pad_id=r.examples.pad_id)
               for mb in micro_batches if len(mb) >= world]
    started = time.perf_counter()
    # the step's target and token counts over all processes, so every process divides by the
    # same number and a step means the same as on one process
    targets, tokens = _summed(r.accelerator, sum(count_targets(b) for b in batches),
                              sum(b["tokens"] for b in batches))
    loss = train_step(r.model, r.optimizer, r.scheduler, batches, accelerator=r.accelerator, trainable=r.trainable,
                      max_grad_norm=r.cfg.max_grad_norm, amp_dtype=r.amp, total_targets=targets)
    seconds = time.perf_counter() - started
    state = r.state
    state.train_seconds, state.tokens = state.train_seconds + seconds, state.tokens + tokens
    state.step += 1
    state.step_in_epoch += 1
    row = {"step": state.step, "loss": loss, "lr": r.scheduler.get_last_lr()[0], "tokens": tokens,
           "seconds": round(seconds, 4)}
    state.history.append(row)
    r.tracker.log_metrics({"loss": loss, "lr": row["lr"]}, step=state.step)
    r.say({"event": "step", **row, "total": r.total_steps})


def eval_and_track(r: Run) -> None:
    """The eval loss (if there is a held-out set), logged and reported; then keep the best adapter and
    count evaluations without improvement, for early stopping."""
    if not r.examples.eval:
        return
    loss = eval_loss(r.unwrapped, r.examples.eval, batch_size=r.cfg.batch_size, pack=r.cfg.pack,
                     pad_id=r.examples.pad_id, amp_dtype=r.amp)
    r.state.evals.append({"step": r.state.step, "eval_loss": loss})
    r.tracker.log_metrics({"eval_loss": loss}, step=r.state.step)
    r.say({"event": "eval", "step": r.state.step, "eval_loss": loss})
    r.best_adapter = _track_best(r.state, loss, r.unwrapped, r.best_adapter, r.cfg.early_stopping_threshold,
                                 r.cfg.early_stopping_patience)


def checkpoint(r: Run) -> None:
    """Everything a resume needs (train/checkpoints.py); the oldest beyond keep_checkpoints go."""
    from peft import get_peft_model_state_dict

    ckpt.save_checkpoint(r.cfg.out, adapter_state=get_peft_model_state_dict(r.unwrapped),
                         best_adapter=r.best_adapter, optimizer=r.optimizer, scheduler=r.scheduler,
                         state=r.state, config=r.record, keep=r.cfg.keep_checkpoints)


# 5. save ----------------------------------------------------------------------------------------

def save(r: Run) -> dict:
    """Leave the adapter with the best eval loss; the main process writes the output folder
    (metrics.json last) and reports to the tracker. Returns the metrics."""
    from peft import set_peft_model_state_dict

    state = r.state
    if r.best_adapter is not None and state.best_step != state.step:
        set_peft_model_state_dict(r.unwrapped, r.best_adapter)
    metrics = _metrics(state, r.examples.report, r.unwrapped, r.examples.template, r.total_steps)
    r.accelerator.wait_for_everyone()
    if r.accelerator.is_main_process:
        write_outputs(r.cfg.out, r.unwrapped, r.examples.tokenizer, r.record, metrics)
        r.tracker.log_metrics({k: metrics[k] for k in ("tokens_per_second", "final_eval_loss") if metrics.get(k)},
                              step=state.step)
        r.tracker.log_artifacts(r.cfg.out)
    r.say({"event": "done", **metrics})
    return metrics


# helpers ----------------------------------------------------------------------------------------

def train_step(model, optimizer, scheduler, batches: list[dict], *, accelerator, trainable: list,
               max_grad_norm: float, total_targets: int, amp_dtype=torch.float32) -> float:
    """One optimizer step over `batches` (micro-batches); returns the mean response-token loss.

    Each micro-batch's summed loss is divided by the step's total target count, so a step's
    gradient is the mean over its tokens however they were split into micro-batches and processes.
    """
    model.train()
    summed = torch.zeros((), dtype=torch.float64)
    for batch in batches:
        with autocast(model, amp_dtype):
            nll, _ = response_nll(model, batch)
        # DDP averages gradients over processes; scaling by their number makes that average a sum
        accelerator.backward(nll * accelerator.num_processes / total_targets)
        summed += nll.detach().double().cpu()
    if max_grad_norm:
        accelerator.clip_grad_norm_(trainable, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return _summed(accelerator, summed)[0] / total_targets


def _summed(accelerator, *counts) -> tuple:
    """Each of `counts` summed over all processes (unchanged on one process)."""
    if accelerator.num_processes == 1:
        return tuple(float(c) if isinstance(c, torch.Tensor) else c for c in counts)
    local = torch.tensor([float(c) for c in counts], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(local, reduction="sum").tolist()
    return tuple(round(t) if isinstance(c, int) else t for c, t in zip(counts, total))


@torch.no_grad()
def eval_loss(model, examples: list, *, batch_size: int, pack: bool, pad_id: int, amp_dtype=torch.float32) -> float:
    """Mean response-token loss over `examples`, dropout off.

    Eval mode is safe only because load_base turned off bitsandbytes' CPU repacking (see
    models.disable_cpu_4bit_repack); the call below makes sure for models loaded elsewhere.
    """
    disable_cpu_4bit_repack(model)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        with autocast(model, amp_dtype):
            nll, n = response_nll(model, collate(examples[i:i + batch_size], pack=pack, pad_id=pad_id))
        total, count = total + nll.item(), count + n
    model.train(was_training)
    return total / count


def _track_best(state, current, model, best_adapter, threshold, patience):
    """Remember the best adapter by eval loss; count evaluations without improvement."""
    from peft import get_peft_model_state_dict

    if current is None:
        return best_adapter
    if state.best_eval_loss is None or current < state.best_eval_loss - threshold:
        state.best_eval_loss, state.best_step, state.bad_evals = current, state.step, 0
        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    state.bad_evals += 1
    if patience and state.bad_evals >= patience:
        state.stopped_early = True
    return best_adapter


def _describe(table) -> str | None:
    return None if table is None else "<DataFrame>" if isinstance(table, pl.DataFrame) else str(table)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def setup_model(base_path, *, four_bit, dtype, lora_r, lora_alpha, lora_dropout, target_modules, init_adapter,
                 gradient_checkpointing):
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    model = load_base(base_path, four_bit=four_bit, dtype=dtype)
    model.config.use_cache = False
    checkpointing = {"use_reentrant": False}   # reentrant checkpointing needs inputs that require grad
    if four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs=checkpointing)
    elif gradient_checkpointing:
        # transformers 5 renamed it (and its keyword); the old name still works but warns
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    if init_adapter:
        return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    lora = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=target_modules,
                      bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"target_modules {target_modules!r}: {exc}") from None


def _refuse_sharding(accelerator) -> None:
    # the loop evaluates and saves through the unwrapped model, which FSDP/DeepSpeed sharding breaks
    import os

    for kind in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
        if accelerator.distributed_type.name == kind or os.environ.get(f"ACCELERATE_USE_{kind}", "").lower() == "true":
            raise ConfigError(f"accelerate's {kind} is not supported by seedloop's trainer yet; use data parallel: "
                              "accelerate launch --config_file train/configs/accelerate/ddp.yaml")


def _adapter_shape(folder: Path) -> dict:
    import json

    path = folder / "adapter_config.json"
    if not path.is_file():
        raise InputError("not an adapter folder: no adapter_config.json", file=str(folder))
    config = json.loads(path.read_text())
    return {"lora_r": config.get("r"), "lora_alpha": config.get("lora_alpha")}


def _metrics(state, data_report, model, template, total_steps) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    final_eval = state.evals[-1]["eval_loss"] if state.evals else None
    return {
        "format": 1, "status": "complete", "steps": state.step, "planned_steps": total_steps,
        "epochs_started": state.epoch + 1, "stopped_early": state.stopped_early,
        "train_loss": state.history[-1]["loss"] if state.history else None,
        "initial_eval_loss": state.evals[0]["eval_loss"] if state.evals else None,
        "final_eval_loss": final_eval, "best_eval_loss": state.best_eval_loss, "best_step": state.best_step,
        "tokens": state.tokens, "train_seconds": round(state.train_seconds, 2),
        "tokens_per_second": round(state.tokens / state.train_seconds, 1) if state.train_seconds else None,
        **peak_memory_mb(), "model_footprint_mb": round(model.get_memory_footprint() / 2**20, 1),
        "trainable_params": trainable, "chat_template": template, "data": data_report,
        "history": state.history, "evals": state.evals,
    }


def _check_out_folder(out: Path, resume: bool) -> None:
    if resume:
        return
    if (out / "metrics.json").is_file() or ckpt.latest_checkpoint(out) is not None:
        raise ConfigError(f"{out} already holds a training run: pass --resume to continue or reuse it, "
                          "or choose another --out")


def _finished_metrics(out: Path) -> dict:
    import json

    return json.loads((out / "metrics.json").read_text())
