"""Export a trained adapter: as a clean adapter folder, or merged into a full-precision copy of its base.

A classifier (train/classifier_model.py) merges into a folder that `load_classifier` reads without
peft: the merged encoder (a plain Hugging Face model) plus its label head, or, for a causal-LM
base, a *ForSequenceClassification folder with the labels in its config.

Merging goes into a bf16 or fp32 copy of the base, never into the 4-bit weights: rounding the merged
weights back to 4 bits about doubles the error. The merged folder is a normal
Hugging Face model (with the tokenizer and chat template the adapter was trained with) that any
server can load.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from seedloop.core.atomic import atomic_path
from seedloop.core.errors import InputError
from train.card import write_model_card
from train.classifier_model import is_classifier
from train.models import load_base

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json", "train_config.yaml", "metrics.json",
                 "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                 "tokenizer.model", "vocab.txt", "vocab.json", "merges.txt", "loss_curve.png", "README.md",
                 "classifier.json", "evaluation.json")


def _adapter_folder(adapter_dir: str | Path) -> Path:
    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file():
        raise InputError("not a trained adapter folder: no adapter_config.json (train one with `seedloop train`)",
                         file=str(folder))
    return folder


def merge_adapter(adapter_dir: str | Path, out: str | Path, *, dtype: str = "bf16") -> Path:
    """Write base + adapter merged, in `dtype` (bf16 or fp32), to `out` (atomically)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from train.inference import adapter_base, adapter_train_config

    folder = _adapter_folder(adapter_dir)
    if dtype not in ("bf16", "fp32"):
        raise InputError(f"merge dtype should be bf16 or fp32, found {dtype!r}", field="dtype")
    if is_classifier(folder):
        return _merge_classifier(folder, Path(out), dtype)
    base = load_base(adapter_base(folder, adapter_train_config(folder)), four_bit=False, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with atomic_path(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_model_card(folder, tmp, merged=True)
    return Path(out)


def copy_adapter(adapter_dir: str | Path, out: str | Path) -> Path:
    """The adapter and what belongs with it, without checkpoints or tracking data."""
    folder = _adapter_folder(adapter_dir)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name in ADAPTER_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, tmp / name)
    return Path(out)


def _merge_classifier(folder: Path, out: Path, dtype: str) -> Path:
    """A classifier with LoRA folded in; `load_classifier` reads it back (see save_merged)."""
    import torch

    from train.classifier_model import load_classifier, read_meta, save_merged

    clf = load_classifier(folder, four_bit=False)      # fp32, adapter merged
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_merged(clf, tmp, read_meta(folder), dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
        if (folder / "metrics.json").is_file():
            shutil.copy2(folder / "metrics.json", tmp / "metrics.json")
        write_model_card(folder, tmp, merged=True)
    return out
