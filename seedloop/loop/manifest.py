"""A round's manifest: what each step read (by hash), wrote, counted and how long it took.

`rounds/NNN/manifest.json` is rewritten atomically after every step. A step is skipped when the
manifest says it finished with the same input hash and its outputs still exist; that, plus atomic
artifact writes, is what makes a killed cycle cost nothing but a re-run.

A step that starts records `running` with its input hash first, so a re-run knows whether a half-
written artifact (a training run's checkpoints) belongs to the same inputs and may be resumed.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from seedloop.core.atomic import write_text

FORMAT = 1


def file_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's files (name + content, in sorted order); 'missing' if absent."""
    path = Path(path)
    if not path.exists():
        return "missing"
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def value_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Manifest:
    """The manifest of one round folder; every change is saved at once."""

    def __init__(self, folder: Path, round_no: int):
        self.folder = Path(folder)
        self.path = self.folder / "manifest.json"
        if self.path.is_file():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        else:
            self.data = {"format": FORMAT, "round": round_no, "status": "running", "steps": {}}

    @property
    def steps(self) -> dict:
        return self.data["steps"]

    def done(self, step: str, inputs: str) -> bool:
        rec = self.steps.get(step)
        if not rec or rec.get("status") != "done" or rec.get("inputs") != inputs:
            return False
        return all((self.folder / o).exists() for o in rec.get("outputs", []))

    def started(self, step: str, inputs: str) -> bool:
        """Record that `step` starts; True when an earlier run began it with the same inputs."""
        rec = self.steps.get(step) or {}
        same = rec.get("inputs") == inputs
        self.steps[step] = {"status": "running", "inputs": inputs, "started": _now()}
        self.save()
        return same

    def finish(self, step: str, inputs: str, outputs: list[str], seconds: float, **info: Any) -> None:
        self.steps[step] = {"status": "done", "inputs": inputs, "outputs": outputs, "seconds": round(seconds, 2),
                            "finished": _now(), **info}
        self.save()

    def get(self, step: str, key: str, default: Any = None) -> Any:
        return (self.steps.get(step) or {}).get(key, default)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
