"""Model memory: the base in 4-bit NF4 (double quantization) vs bf16, side by side in one run.

    .venv/bin/python benchmarks/train_memory.py [--model local|PATH]

Loads the same base twice with train.models.load_base and counts the bytes of every parameter and
buffer (transformers' get_memory_footprint), and separately the bytes of the linear layers that
4-bit quantization replaces (packed NF4 weights plus their quantization statistics) against the
same layers in bf16. The embedding matrix is not quantized (QLoRA keeps it in 16 bits): SmolLM2's
is 28M of its 135M parameters, which is why the whole model shrinks less than its linear layers.
Goal (issue 5): 4-bit weights at most 40% of bf16.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def linear_bytes(model) -> int:
    """Bytes held by the linear layers inside the transformer blocks (the ones QLoRA quantizes)."""
    import torch
    from bitsandbytes.nn import Linear4bit

    total = 0
    for name, module in model.named_modules():
        if isinstance(module, Linear4bit):
            total += module.weight.numel() * module.weight.element_size()
            state = module.weight.quant_state
            for tensor in (state.absmax, state.code, *((state.state2.absmax, state.state2.code) if state.nested else ())):
                total += tensor.numel() * tensor.element_size()
        elif isinstance(module, torch.nn.Linear) and name != "lm_head" and ".layers." in f".{name}":
            total += module.weight.numel() * module.weight.element_size()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="local", help="'local' (SmolLM2-135M-Instruct) or a model folder")
    args = parser.parse_args()
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from train.models import load_base, resolve_base

    base = resolve_base(args.model)
    rows = {}
    for label, four_bit in (("bf16", False), ("4-bit NF4", True)):
        model = load_base(base, four_bit=four_bit, dtype="bf16")
        rows[label] = (model.get_memory_footprint() / 2**20, linear_bytes(model) / 2**20)
        del model
    (full16, lin16), (full4, lin4) = rows["bf16"], rows["4-bit NF4"]
    print(f"model {base.name}")
    print(f"{'':<28} {'bf16 MB':>9} {'4-bit MB':>9} {'4-bit / bf16':>13}")
    print(f"{'quantized linear layers':<28} {lin16:9.1f} {lin4:9.1f} {lin4 / lin16:13.1%}")
    print(f"{'whole model (all weights)':<28} {full16:9.1f} {full4:9.1f} {full4 / full16:13.1%}")
    print("goal: 4-bit weights <= 40% of bf16")


if __name__ == "__main__":
    main()
