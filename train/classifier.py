"""The classifier recipe: `train_classifier()`, read top to bottom.

  1. data: records -> (text, label) pairs and the label list (given, or the outputs' distinct values)
  2. model: base + head + LoRA (train/classifier_model.py); a warm start loads the previous round's
     adapter and head, the head's rows mapped onto the new label list (a new label starts fresh)
  3. a linear probe: the head alone fitted on the frozen base's features (L-BFGS, L2 like sklearn's C)
  4. fine-tuning: LoRA and head together, AdamW (the head at `head_lr`), linear warm-up then decay
     to 0, `epochs` passes over the shuffled pairs, cross-entropy
  5. save: adapter, tokenizer, classifier.json, and metrics.json last (its presence means complete)

A run on 200 labels takes about a minute on 2 cores, so there are no checkpoints: a killed run
trains again from the start, and `resume=True` returns a finished run's metrics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import torch

from seedloop.core.atomic import write_text
from seedloop.core.errors import InputError
from seedloop.core.tables import read_table
from train import classifier_model as cm
from train.card import lineage, write_model_card
from train.config import resolve


def classifier_text(record: dict) -> str:
    """What a classifier reads: the record's input when it has one (the instruction is then the task,
    the same on every row), else its instruction; for chat rows, the last user turn."""
    messages = record.get("messages") or []
    users = [m["content"] for m in messages if m.get("role") == "user"]
    if users and not record.get("instruction"):
        return users[-1]
    return str(record.get("input") or record.get("instruction") or "").strip()


def label_of(record: dict) -> str | None:
    output = record.get("output")
    if output in (None, ""):
        answers = [m["content"] for m in record.get("messages") or [] if m.get("role") == "assistant"]
        output = answers[-1] if answers else None
    return None if output is None else str(output).strip()


def labelled_pairs(df: pl.DataFrame, *, include_rejected: bool = False) -> tuple[list[str], list[str], list, dict]:
    """(texts, labels, ids, drop counts) of the rows that can teach: not rejected, with text and label."""
    texts, labels, ids, drops = [], [], [], {"rejected": 0, "no_label": 0, "no_text": 0}
    for row in df.iter_rows(named=True):
        label, text = label_of(row), classifier_text(row)
        reason = ("rejected" if row.get("status") == "rejected" and not include_rejected
                  else "no_label" if not label else "no_text" if not text else None)
        if reason:
            drops[reason] += 1
            continue
        texts.append(text)
        labels.append(label)
        ids.append(row.get("id"))
    return texts, labels, ids, drops


def train_classifier(data: str | Path | pl.DataFrame, base: str | Path = "minilm", out: str | Path = "runs/classifier",
                     *, labels: list[str] | None = None, init_adapter: str | Path | None = None, resume: bool = False,
                     progress: Callable[[dict], None] | None = None, **settings) -> dict:
    """Fine-tune a classifier student on the records in `data`; write it to `out`; return its metrics.

    `settings` are the keys of train/configs/classifier.yaml (same defaults). `labels` fixes the label
    list (and its order); else it is the sorted distinct outputs, plus a warm start's labels."""
    cfg = resolve(None, recipe="classifier", **settings)   # checks every key and value
    out, say = Path(out), progress or (lambda event: None)
    if resume and (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    started = time.perf_counter()

    # 1. data ------------------------------------------------------------------------------------
    df = data if isinstance(data, pl.DataFrame) else read_table(data)
    texts, targets, _, drops = labelled_pairs(df, include_rejected=cfg["include_rejected"])
    if not texts:
        raise InputError(f"no rows with a text and a label to train on ({df.height} rows; skipped {drops})",
                         file=None if isinstance(data, pl.DataFrame) else str(data))
    previous = cm.read_meta(Path(init_adapter)) if init_adapter else None
    label_list = _label_list(targets, labels, previous)
    y = torch.tensor([label_list.index(t) for t in targets])

    # 2. model -----------------------------------------------------------------------------------
    torch.manual_seed(cfg["seed"])
    base_path = cm.resolve_classifier_base(previous["base"] if previous else base)
    student = _build_student(base_path, label_list, cfg, init_adapter, previous)
    model, tokenizer, pooling = student.model, student.tokenizer, student.pooling
    say({"event": "start", "total": cfg["epochs"] * -(-len(texts) // cfg["batch_size"]), "step": 0,
         "train_examples": len(texts), "eval_examples": 0, **drops})

    # 3. the linear probe, then 4. fine-tuning of LoRA and head together ---------------------------
    probe_loss = _probe(student, texts, y, cfg["probe_c"]) if cfg["probe_c"] > 0 else None
    history = _fit(student, texts, y, cfg, say) if cfg["epochs"] > 0 else []

    # 5. save ------------------------------------------------------------------------------------
    metrics = {"task": "classification", "labels": len(label_list), "train_examples": len(texts),
               "steps": len(history), "probe_loss": probe_loss,
               "train_loss": history[-1]["loss"] if history else probe_loss, "history": history,
               "seconds": round(time.perf_counter() - started, 1), "data": {"counts": drops, "lineage": lineage(df)},
               "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    meta = {"task": "classification", "labels": label_list, "base": str(previous["base"] if previous else base),
            "base_path": str(base_path), "pooling": pooling, "max_length": cfg["max_length"],
            "four_bit": bool(cfg["four_bit"] and pooling == "last"), "settings": cfg,
            "init_adapter": str(init_adapter) if init_adapter else None}
    if (out / "metrics.json").exists():
        (out / "metrics.json").unlink()   # until the new metrics land, the folder does not claim to be complete
    cm.save_classifier(out, model, tokenizer, meta)
    write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    write_model_card(out)
    say({"event": "done", **metrics})
    return metrics


def _build_student(base_path: Path, label_list: list[str], cfg: dict, init_adapter, previous: dict | None,
                   ) -> cm.Classifier:
    """Base, label head and LoRA; a warm start loads the previous round's adapter and head."""
    tokenizer = cm.load_tokenizer(base_path)
    model, pooling = cm.build_model(base_path, len(label_list), four_bit=cfg["four_bit"], dtype=cfg["dtype"])
    if pooling == "last":
        model.config.pad_token_id = tokenizer.pad_token_id
    model = cm.add_lora(model, pooling, r=cfg["lora_r"], alpha=cfg["lora_alpha"], dropout=cfg["lora_dropout"])
    if previous:
        _warm_start(model, Path(init_adapter), previous["labels"], label_list)
    return cm.Classifier(model, tokenizer, label_list, pooling, cfg["max_length"])


def _label_list(targets: list[str], given: list[str] | None, previous: dict | None) -> list[str]:
    if given:
        unknown = sorted(set(targets) - set(given))
        if unknown:
            raise InputError(f"outputs that are not in the label list: {', '.join(unknown[:5])}"
                             + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""), field="output")
        return list(given)
    seen = list(previous["labels"]) if previous else []
    return seen + sorted(set(targets) - set(seen))   # a warm start keeps its labels' order


def _warm_start(model, folder: Path, old: list[str], new: list[str]) -> None:
    """Load the previous adapter; the head's rows follow their labels, and a new label's row starts at
    zero (its logit is then the bias, until training moves it)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(folder / "adapter_model.safetensors")
    for key, tensor in state.items():
        if _is_head(key) and tensor.shape[0] == len(old):
            rows = torch.zeros((len(new), *tensor.shape[1:]), dtype=tensor.dtype)
            for i, label in enumerate(old):
                if label in new:
                    rows[new.index(label)] = tensor[i]
            state[key] = rows
    set_peft_model_state_dict(model, state)


def _head(model) -> torch.nn.Linear:
    """The trainable label head inside the peft wrapper (peft trains a copy: modules_to_save)."""
    for name, module in model.named_modules():
        if name.endswith("modules_to_save.default") and _is_head(name):
            return module
    raise RuntimeError("no trainable head found in the classifier")   # a bug, not bad input


def _probe(student: cm.Classifier, texts: list[str], y: torch.Tensor, c: float, batch_size: int = 64) -> float:
    """Fit the head alone on the frozen base's features: the "LP" of LP-FT (Kumar et al., 2022).

    Fine-tuning then starts from a head that already separates the labels, so its first gradients
    refine the features instead of wrecking them to serve a random head. The fit is full-batch
    L-BFGS on cross-entropy plus an L2 penalty weighted as scikit-learn's C (1 / (2 C n))."""
    head = _head(student.model)
    seen, features = [], []
    hook = head.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().float()))
    student.model.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = student.encode(texts[start:start + batch_size])
            student.logits(batch)
            features.append(_pooled(seen.pop(), batch["input_ids"], student.tokenizer.pad_token_id))
    hook.remove()
    x = torch.cat(features)
    params = [p for p in (head.weight, head.bias) if p is not None]
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=300, line_search_fn="strong_wolfe")
    penalty = 1.0 / (2.0 * c * len(texts))

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.nn.functional.linear(x, head.weight.float(),
                                                 None if head.bias is None else head.bias.float()), y)
        loss = loss + penalty * head.weight.float().pow(2).sum()
        loss.backward()
        return loss

    return round(float(optimizer.step(closure).detach()), 5)


def _pooled(hidden: torch.Tensor, input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The head's input per row. A causal LM's head sees every position and transformers keeps the
    last one that is not padding (its rule, on either padding side); mean pooling is done already."""
    if hidden.dim() == 2:
        return hidden
    positions = torch.arange(input_ids.shape[1])
    last = (positions * (input_ids != pad_id)).argmax(-1)
    return hidden[torch.arange(len(hidden)), last]


def _fit(student: cm.Classifier, texts: list[str], y: torch.Tensor, cfg: dict, say) -> list[dict]:
    model = student.model
    head = [p for n, p in model.named_parameters() if p.requires_grad and _is_head(n)]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not _is_head(n)]
    optimizer = torch.optim.AdamW([{"params": body, "lr": cfg["lr"]}, {"params": head, "lr": cfg["head_lr"]}],
                                  weight_decay=cfg["weight_decay"])
    bs = cfg["batch_size"]
    total = cfg["epochs"] * -(-len(texts) // bs)
    warmup = max(1, round(cfg["warmup_ratio"] * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    rng, history = np.random.default_rng(cfg["seed"]), []
    model.train()
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(len(texts))
        for start in range(0, len(texts), bs):
            idx = order[start:start + bs]
            logits = student.logits(student.encode([texts[i] for i in idx]))
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            history.append({"step": len(history) + 1, "epoch": epoch, "loss": round(loss.item(), 5)})
            say({"event": "step", **history[-1], "total": total})
    model.eval()
    return history


def _is_head(name: str) -> bool:
    # mean pooling: our `head`; causal LMs: transformers' `score` (classifier for BERT-likes)
    return any(f".{h}." in f".{name}." for h in ("head", "score", "classifier"))
