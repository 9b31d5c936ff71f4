"""Checkpoints for `--resume`: the adapter, optimizer, scheduler, random state and loop position.

A checkpoint is a folder `OUT/checkpoints/step-000050/`, written whole to a temporary name and then
renamed, so any checkpoint folder that exists is complete. Resuming restores everything a next step
depends on, so an interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from seedloop.core.atomic import atomic_path
from seedloop.core.errors import ConfigError

FORMAT = 1


@dataclass
class TrainState:
    """Where the loop is. `step_in_epoch` counts optimizer steps already done in `epoch`."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)   # one row per step: step, loss, lr, tokens, seconds
    evals: list[dict] = field(default_factory=list)     # step, eval_loss
    best_eval_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False


def checkpoint_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def latest_checkpoint(out: Path) -> Path | None:
    folders = sorted(checkpoint_dir(out).glob("step-*"))
    return folders[-1] if folders else None


def save_checkpoint(out: Path, *, adapter_state: dict, best_adapter: dict | None, optimizer, scheduler,
                    state: TrainState, config: dict, keep: int) -> Path:
    from safetensors.torch import save_file

    target = checkpoint_dir(out) / f"step-{state.step:06d}"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        save_file(_contiguous(adapter_state), str(tmp / "adapter.safetensors"))
        if best_adapter is not None:
            save_file(_contiguous(best_adapter), str(tmp / "best_adapter.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": _rng_state()}, tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps({"format": FORMAT, "state": asdict(state), "config": config},
                                                   indent=1))
    for old in sorted(checkpoint_dir(out).glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: Path, *, optimizer, scheduler, config: dict) -> tuple[TrainState, dict, dict | None]:
    """Restore optimizer, scheduler and random state; return the loop state and the adapter tensors."""
    from safetensors.torch import load_file

    saved = json.loads((path / "state.json").read_text())
    _check_same_config(saved["config"], config, path)
    trainer = torch.load(path / "trainer.pt", weights_only=False)
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    _set_rng_state(trainer["rng"])
    best = path / "best_adapter.safetensors"
    return (TrainState(**saved["state"]), load_file(str(path / "adapter.safetensors")),
            load_file(str(best)) if best.is_file() else None)


# settings that may change between a crash and its resume without changing what is trained
RESUMABLE = {"data", "eval_data", "report_to", "tracking_uri", "experiment", "run_name", "keep_checkpoints", "save_every"}


def _check_same_config(saved: dict, now: dict, path: Path) -> None:
    changed = [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
               if k not in RESUMABLE and saved.get(k) != now.get(k)]
    if changed:
        raise ConfigError(f"cannot resume from {path}: the settings changed since it was saved ({'; '.join(changed)}); "
                          "restore them, or train into a new folder")


def _contiguous(tensors: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def _rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
