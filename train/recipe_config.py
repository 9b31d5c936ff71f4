"""`TrainConfig`: everything one run of the QLoRA recipe (train/recipe.py) is told, in one frozen object.

Two parts: the run's inputs (data, base, out, eval_data, init_adapter, resume), then the settings,
which are the keys of train/configs/qlora.yaml in the file's order and with its defaults
(tests/train/test_config.py holds them equal). Build it from the resolved YAML config:

    TrainConfig(data=..., out=..., **train.config.resolve("smoke", ["lr=1e-4"]))

No checking happens here: `train.config.resolve` checks keys and values; an unknown keyword is a
TypeError, as it is for any function.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# the fields that say what to train on and where; every other field is a key of qlora.yaml
INPUTS = ("data", "base", "out", "eval_data", "init_adapter", "resume")


@dataclass(frozen=True)
class TrainConfig:
    # the run's inputs
    data: Any                               # a record table: a path or a polars DataFrame
    base: str | Path = "local"              # a Hugging Face folder or a packaged name
    out: Path = Path("runs/train")
    eval_data: Any = None                   # a held-out record table; None: split eval_fraction off data
    init_adapter: str | Path | None = None  # warm start: a previous round's adapter folder
    resume: bool = False                    # continue from OUT's latest checkpoint

    # model
    four_bit: bool = True
    dtype: str = "auto"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list = "all-linear"
    gradient_checkpointing: bool = True
    # data
    max_length: int = 512
    overlong: str = "drop"
    pack: bool = True
    eval_fraction: float = 0.1
    include_rejected: bool = False
    chat_template: str = "auto"
    # optimization
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 0.3
    seed: int = 0
    # evaluation, early stopping, checkpoints
    eval_every: int = 50
    early_stopping_patience: int = 3
    early_stopping_threshold: float = 0.0
    save_every: int = 50
    keep_checkpoints: int = 2
    # tracking
    report_to: str = "mlflow"
    tracking_uri: str | None = None
    experiment: str = "seedloop"
    run_name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))   # frozen: the one conversion goes around it

    def settings(self) -> dict:
        """The qlora.yaml keys and their values, in the file's order (the inputs left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in INPUTS}
