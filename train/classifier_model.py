"""Classifier students: a label head on a base model, with LoRA, saved and loaded as one folder.

Two kinds of base, told apart by their config:
- an encoder (the packaged all-MiniLM-L6-v2, any BERT-like folder): the mean of the last hidden
  states over the real tokens, L2-normalized (the pooling sentence-transformers trained these
  models with), then a linear head. Measured on Banking77 (benchmarks/specialist.py) this beats
  transformers' *ForSequenceClassification, whose [CLS] pooler the sentence-embedding training
  never tuned.
- a causal LM (SmolLM2, any Llama-like folder): transformers' *ForSequenceClassification (the last
  real token's state, then a linear `score` head), base in 4-bit NF4 where `four_bit`, LoRA with
  peft's SEQ_CLS task type, which trains the head in full.

The folder (`save_classifier`): classifier.json (labels, base, pooling, text limit), the peft
adapter (adapter_config.json, adapter_model.safetensors), head.safetensors for mean pooling, and
the tokenizer. Not handled: multi-label tasks, models that need `trust_remote_code`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seedloop.core.atomic import write_text
from seedloop.core.errors import InputError
from seedloop.core.models import packaged_encoder

FORMAT = 1
META = "classifier.json"
HEAD = "head.safetensors"       # the label head of a merged mean-pooling classifier
ENCODER_NAMES = ("minilm", "all-minilm-l6-v2")


def resolve_classifier_base(spec: str | os.PathLike) -> Path:
    """`minilm` -> the packaged encoder; `local`/`smollm2` -> the packaged SmolLM2; else a HF folder."""
    from train.models import resolve_base

    if str(spec).lower() in ENCODER_NAMES:
        return packaged_encoder()
    return resolve_base(spec)


def is_causal_lm(base: Path) -> bool:
    config = json.loads((base / "config.json").read_text())
    return any(a.endswith("ForCausalLM") for a in config.get("architectures") or []) or config.get("is_decoder", False)


class MeanPoolClassifier(torch.nn.Module):
    """encoder -> masked mean of the last hidden states -> L2 normalize -> linear head."""

    def __init__(self, encoder, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids, attention_mask, **extra):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def forward(self, input_ids, attention_mask, **extra):
        return self.head(self.embed(input_ids, attention_mask, **extra))


@dataclass
class Classifier:
    """A loaded classifier student: `logits(batch)` and `predict_proba(texts)`."""

    model: torch.nn.Module
    tokenizer: object
    labels: list[str]
    pooling: str            # "mean" (encoder) or "last" (causal LM)
    max_length: int

    def encode(self, texts: list[str]) -> dict:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def logits(self, batch: dict) -> torch.Tensor:
        out = self.model(**batch)
        return (out if isinstance(out, torch.Tensor) else out.logits).float()

    @torch.inference_mode()
    def predict_proba(self, texts: list[str], *, batch_size: int = 64, progress=None) -> np.ndarray:
        """(len(texts) x labels) softmax probabilities; one forward pass per text, in batches of
        similar length (sorted, so little of each batch is padding), returned in input order."""
        self.model.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = self.encode([texts[i] for i in idx])
            probs[idx] = torch.softmax(self.logits(batch), dim=-1).numpy()
            if progress:
                progress(min(start + batch_size, len(texts)))
        return probs


def build_model(base: Path, num_labels: int, *, four_bit: bool, dtype: str):
    """The untrained student (frozen base + fresh head) and its pooling kind."""
    from transformers import AutoModel, AutoModelForSequenceClassification, BitsAndBytesConfig

    from train.models import disable_cpu_4bit_repack, pick_dtype

    if not is_causal_lm(base):
        return MeanPoolClassifier(AutoModel.from_pretrained(base, dtype=torch.float32), num_labels), "mean"
    compute = pick_dtype(dtype)
    kwargs = {"dtype": compute, "num_labels": num_labels}
    if four_bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute)
    model = AutoModelForSequenceClassification.from_pretrained(base, **kwargs)
    disable_cpu_4bit_repack(model)
    return model, "last"


def add_lora(model, pooling: str, *, r: int, alpha: int, dropout: float):
    """LoRA on every linear layer of the base; the head trains in full (peft's modules_to_save)."""
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if pooling == "mean":
        # "all-linear" is refused on a module that is not a transformers model: name the encoder's
        # linear layers instead (query, key, value, dense for BERT)
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.encoder.named_modules()
                        if isinstance(m, torch.nn.Linear)})
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names,
                            exclude_modules=["head"], modules_to_save=["head"])
        return get_peft_model(model, config)
    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules="all-linear")
    return get_peft_model(model, config)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:   # causal LMs: pad with end-of-text; the head reads the last real token
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_classifier(folder: str | os.PathLike) -> bool:
    return (Path(folder) / META).is_file()


def read_meta(folder: Path) -> dict:
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT:
        raise InputError(f"classifier format {meta.get('format')!r}, this seedloop reads {FORMAT}", file=str(folder / META))
    return meta


def save_classifier(folder: Path, model, tokenizer, meta: dict) -> None:
    """The adapter, the tokenizer, then classifier.json (written last: its presence means complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_text(folder / META, json.dumps({"format": FORMAT, **meta}, indent=1))


def load_classifier(folder: str | os.PathLike, *, four_bit: bool | None = None) -> Classifier:
    """A trained classifier folder, in eval mode, fp32 on CPU (see train.inference for why)."""
    from peft import PeftModel

    folder = Path(folder)
    meta = read_meta(folder)
    if meta.get("merged"):
        return _load_merged(folder, meta)
    base = resolve_classifier_base(meta["base_path"] if Path(meta["base_path"]).is_dir() else meta["base"])
    four_bit = meta.get("four_bit", False) if four_bit is None else four_bit
    dtype = "fp32" if not torch.cuda.is_available() else meta.get("dtype", "auto")
    model, pooling = build_model(base, len(meta["labels"]), four_bit=four_bit, dtype=dtype)
    if pooling == "last":
        model.config.pad_token_id = load_tokenizer(folder).pad_token_id
    model = PeftModel.from_pretrained(model, str(folder))
    if not four_bit:   # fold LoRA into the full-precision weights: exact, and no adapter cost per forward
        model = model.merge_and_unload()
    return Classifier(model.eval(), load_tokenizer(folder), list(meta["labels"]), pooling, meta["max_length"])


def save_merged(clf: Classifier, folder: Path, meta: dict, *, dtype: torch.dtype) -> None:
    """A classifier with LoRA folded in, loadable without peft: for mean pooling, the encoder as a
    plain Hugging Face model (AutoModel, sentence-transformers) plus head.safetensors; for a causal
    LM, a *ForSequenceClassification folder whose config names the labels (id2label)."""
    from safetensors.torch import save_file

    model = clf.model.to(dtype)
    if clf.pooling == "mean":
        model.encoder.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(folder / HEAD))
    else:
        model.config.id2label = dict(enumerate(clf.labels))
        model.config.label2id = {label: i for i, label in enumerate(clf.labels)}
        model.save_pretrained(folder)
    clf.tokenizer.save_pretrained(folder)
    merged = {**meta, "merged": True, "four_bit": False, "base_path": ".", "dtype": str(dtype).split(".")[-1]}
    write_text(folder / META, json.dumps({"format": FORMAT, **merged}, indent=1))


def _load_merged(folder: Path, meta: dict) -> Classifier:
    from safetensors.torch import load_file

    from transformers import AutoModel, AutoModelForSequenceClassification

    tokenizer, pooling = load_tokenizer(folder), meta["pooling"]
    if pooling == "mean":
        model = MeanPoolClassifier(AutoModel.from_pretrained(folder, dtype=torch.float32), len(meta["labels"]))
        model.head.load_state_dict({k: v.float() for k, v in load_file(folder / HEAD).items()})
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
    return Classifier(model.eval(), tokenizer, list(meta["labels"]), pooling, meta["max_length"])
