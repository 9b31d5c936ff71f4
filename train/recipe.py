"""The QLoRA recipe: one function, `train()`, that reads top to bottom.

  1. data: records -> chat-rendered examples (response-only labels), held-out split
  2. model: base in 4-bit NF4 (or plain), LoRA on every linear layer, or warm-started from an adapter
  3. optimizer and schedule; restore a checkpoint on resume
  4. an explicit loop: step, evaluate, stop early, checkpoint
  5. save: adapter, tokenizer + chat template, resolved config, metrics, loss curve
  6. clean up

Side concerns live in helpers: checkpoints.py, tracking.py, loss.py, data.py. Multi-GPU runs go
through accelerate's DDP (`accelerate launch --config_file train/configs/accelerate/ddp.yaml -m
seedloop train ...`): each process takes its share of every micro-batch, the step's token counts are
summed over processes so a step means the same as on one, and only the main process writes.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Callable

import polars as pl
import torch

from seedloop.core.errors import ConfigError, InputError
from seedloop.core.tables import read_table
from train import checkpoints as ckpt
from train.chat import setup_chat_template
from train.data import collate, encode_records, plan_epoch, split_eval, training_records
from train.loss import autocast, count_targets, response_nll
from train.models import disable_cpu_4bit_repack, load_base, pick_dtype, resolve_base
from train.outputs import write_outputs
from train.tracking import open_tracker, peak_memory_mb


def train(data: str | Path | pl.DataFrame, base: str | Path = "local", out: str | Path = "runs/train", *,
          eval_data: str | Path | pl.DataFrame | None = None, init_adapter: str | Path | None = None,
          resume: bool = False, four_bit: bool = True, dtype: str = "auto", lora_r: int = 16,
          lora_alpha: int = 32, lora_dropout: float = 0.05, target_modules: str | list = "all-linear",
          gradient_checkpointing: bool = True, max_length: int = 512, overlong: str = "drop", pack: bool = True,
          eval_fraction: float = 0.1, include_rejected: bool = False, chat_template: str = "auto",
          epochs: int = 3, max_steps: int | None = None, batch_size: int = 8, grad_accum: int = 1,
          lr: float = 2e-4, weight_decay: float = 0.0, warmup_ratio: float = 0.03, lr_scheduler: str = "cosine",
          max_grad_norm: float = 0.3, seed: int = 0, eval_every: int = 50, early_stopping_patience: int = 3,
          early_stopping_threshold: float = 0.0, save_every: int = 50, keep_checkpoints: int = 2,
          report_to: str = "mlflow", tracking_uri: str | None = None, experiment: str = "seedloop",
          run_name: str | None = None, progress: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune `base` on the records in `data`; write the adapter and its metrics to `out`.

    The keyword settings are the keys of train/configs/qlora.yaml (same defaults). `progress`, if
    given, receives a dict per event (`event`: start, step, eval, note, done). Returns the metrics
    that are also written to OUT/metrics.json. With `resume=True` a finished run returns its metrics
    and an interrupted one continues from its latest checkpoint.
    """
    settings = {"format": 1, **{k: v for k, v in locals().items()
                                if k not in ("data", "eval_data", "out", "progress", "resume")}}
    out = Path(out)
    say = progress or (lambda event: None)
    if resume and (out / "metrics.json").is_file():
        return _finished_metrics(out)
    _check_out_folder(out, resume)

    # 1. data ------------------------------------------------------------------------------------
    base_path = resolve_base(base)
    # a warm start keeps the previous round's tokenizer and chat template
    warm = init_adapter and (Path(init_adapter) / "tokenizer_config.json").is_file()
    tokenizer = _load_tokenizer(Path(init_adapter) if warm else base_path)
    template = setup_chat_template(tokenizer, chat_template)
    if template != "model":
        say({"event": "note", "text": f"chat template: {template} (the model has none of its own)"})
    data_report, train_set, eval_set = _setup_data(data, eval_data, tokenizer, max_length=max_length,
                                                   overlong=overlong, include_rejected=include_rejected,
                                                   eval_fraction=eval_fraction, seed=seed)
    settings.update(data=_describe(data), eval_data=_describe(eval_data), base=str(base), base_path=str(base_path),
                    init_adapter=str(init_adapter or "") or None,
                    data_fingerprint=data_report["fingerprint"], chat_template_source=template)

    # 2. model -----------------------------------------------------------------------------------
    from accelerate import Accelerator

    torch.manual_seed(seed)
    amp = pick_dtype(dtype)   # the compute dtype: bf16 where the hardware has it
    # fp16 needs loss scaling, which accelerate does in backward(); bf16 and fp32 need none
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              mixed_precision="fp16" if amp == torch.float16 else "no")
    world, rank = accelerator.num_processes, accelerator.process_index
    _refuse_sharding(accelerator)
    if world > batch_size:
        raise ConfigError(f"batch_size {batch_size} is smaller than the {world} processes; raise it")
    if init_adapter:   # a warm start keeps the previous adapter's shape; say so if the settings differ
        shape = _adapter_shape(Path(init_adapter))
        if shape != {"lora_r": lora_r, "lora_alpha": lora_alpha}:
            say({"event": "note", "text": f"warm start: the adapter's {shape} replace the configured LoRA shape"})
            settings.update(shape)
    model = _setup_model(base_path, four_bit=four_bit, dtype=dtype, lora_r=lora_r, lora_alpha=lora_alpha,
                         lora_dropout=lora_dropout, target_modules=target_modules, init_adapter=init_adapter,
                         gradient_checkpointing=gradient_checkpointing)
    trainable = [p for p in model.parameters() if p.requires_grad]

    # 3. optimizer, schedule, resume -------------------------------------------------------------
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import get_scheduler

    steps_per_epoch = math.ceil(len(train_set) / (batch_size * grad_accum))
    total_steps = max_steps or epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    scheduler = get_scheduler(lr_scheduler, optimizer, num_warmup_steps=round(warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    state, best_adapter = ckpt.TrainState(), None
    last = ckpt.latest_checkpoint(out) if resume else None
    if last is not None:
        state, adapter, best_adapter = ckpt.load_checkpoint(last, optimizer=optimizer, scheduler=scheduler,
                                                            config=settings)
        set_peft_model_state_dict(model, adapter)
        say({"event": "note", "text": f"resumed from {last} (step {state.step})"})
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    tracker = open_tracker(report_to, out, tracking_uri=tracking_uri, experiment=experiment, run_name=run_name,
                           main_process=accelerator.is_main_process)
    tracker.log_params({**settings, "train_examples": len(train_set), "eval_examples": len(eval_set)})
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    say({"event": "start", "total": total_steps, "step": state.step, "train_examples": len(train_set),
         "eval_examples": len(eval_set), **data_report["counts"]})

    def evaluate_now() -> float | None:
        if not eval_set:
            return None
        loss = eval_loss(unwrapped, eval_set, batch_size=batch_size, pack=pack, pad_id=pad_id, amp_dtype=amp)
        state.evals.append({"step": state.step, "eval_loss": loss})
        tracker.log_metrics({"eval_loss": loss}, step=state.step)
        say({"event": "eval", "step": state.step, "eval_loss": loss})
        return loss

    # 4. the loop --------------------------------------------------------------------------------
    try:
        if state.step == 0:   # the starting point of the curve, and the adapter to beat
            best_adapter = _track_best(state, evaluate_now(), unwrapped, best_adapter, early_stopping_threshold,
                                       early_stopping_patience)
        while state.step < total_steps and not state.stopped_early:
            plan = plan_epoch(len(train_set), batch_size=batch_size, grad_accum=grad_accum, seed=seed,
                              epoch=state.epoch)
            for micro_batches in plan[state.step_in_epoch:]:
                batches = [collate([train_set[i] for i in mb[rank::world]], pack=pack, pad_id=pad_id)
                           for mb in micro_batches if len(mb) >= world]
                started = time.perf_counter()
                # the step's target and token counts over all processes, so every process divides by the
                # same number and a step means the same as on one process
                targets, tokens = _summed(accelerator, sum(count_targets(b) for b in batches),
                                          sum(b["tokens"] for b in batches))
                loss = train_step(model, optimizer, scheduler, batches, accelerator=accelerator,
                                  trainable=trainable, max_grad_norm=max_grad_norm, amp_dtype=amp,
                                  total_targets=targets)
                seconds = time.perf_counter() - started
                state.train_seconds, state.tokens = state.train_seconds + seconds, state.tokens + tokens
                state.step += 1
                state.step_in_epoch += 1
                row = {"step": state.step, "loss": loss, "lr": scheduler.get_last_lr()[0], "tokens": tokens,
                       "seconds": round(seconds, 4)}
                state.history.append(row)
                tracker.log_metrics({"loss": loss, "lr": row["lr"]}, step=state.step)
                say({"event": "step", **row, "total": total_steps})
                at_end = state.step >= total_steps
                if state.step % eval_every == 0 or at_end:
                    current = evaluate_now()
                    best_adapter = _track_best(state, current, unwrapped, best_adapter, early_stopping_threshold,
                                               early_stopping_patience)
                if accelerator.is_main_process and (state.step % save_every == 0 and not at_end):
                    ckpt.save_checkpoint(out, adapter_state=get_peft_model_state_dict(unwrapped),
                                         best_adapter=best_adapter, optimizer=optimizer, scheduler=scheduler,
                                         state=state, config=settings, keep=keep_checkpoints)
                if at_end or state.stopped_early:
                    break
            else:
                state.epoch, state.step_in_epoch = state.epoch + 1, 0

        # 5. save --------------------------------------------------------------------------------
        if best_adapter is not None and state.best_step != state.step:
            set_peft_model_state_dict(unwrapped, best_adapter)   # leave the adapter with the best eval loss
        metrics = _metrics(state, data_report, unwrapped, template, total_steps)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_outputs(out, unwrapped, tokenizer, settings, metrics)
            tracker.log_metrics({k: metrics[k] for k in ("tokens_per_second", "final_eval_loss") if metrics.get(k)},
                                step=state.step)
            tracker.log_artifacts(out)
        say({"event": "done", **metrics})
    except BaseException:
        tracker.finish("KILLED")
        raise
    # 6. clean up --------------------------------------------------------------------------------
    tracker.finish()
    accelerator.end_training()
    return metrics


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


def _setup_data(data, eval_data, tokenizer, *, max_length, overlong, include_rejected, eval_fraction, seed):
    df = data if isinstance(data, pl.DataFrame) else read_table(data)
    where = "the data frame" if isinstance(data, pl.DataFrame) else str(data)
    records, counts = training_records(df, include_rejected=include_rejected)
    if eval_data is not None:
        eval_df = eval_data if isinstance(eval_data, pl.DataFrame) else read_table(eval_data)
        train_records, eval_records = records, training_records(eval_df, include_rejected=include_rejected)[0]
    else:
        train_records, eval_records = split_eval(records, eval_fraction, seed)
    train_set, train_counts = encode_records(train_records, tokenizer, max_length=max_length, overlong=overlong)
    eval_set, eval_counts = encode_records(eval_records, tokenizer, max_length=max_length, overlong=overlong)
    counts = counts + train_counts + eval_counts
    counts["truncated"] = train_counts["truncated"] + eval_counts["truncated"]
    if not train_set:
        found = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "none"
        raise InputError(f"no training examples: {df.height} rows, dropped {found}; need records with an "
                         "output that are not rejected and fit in max_length", file=where)
    fingerprint = hashlib.sha256("\n".join(sorted(r.get("id") or "" for r in records)).encode()).hexdigest()[:16]
    report = {"rows": df.height, "counts": dict(counts), "fingerprint": fingerprint,
              "train_examples": len(train_set), "eval_examples": len(eval_set)}
    return report, train_set, eval_set


def _describe(table) -> str | None:
    return None if table is None else "<DataFrame>" if isinstance(table, pl.DataFrame) else str(table)


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _setup_model(base_path, *, four_bit, dtype, lora_r, lora_alpha, lora_dropout, target_modules, init_adapter,
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
