"""The response-token loss, computed where it is needed and nowhere else.

The output head of a small model is a large share of its compute (SmolLM2-135M: a 576 x 49,152
matrix, a fifth of the forward pass) and its fp32 logits a large share of its memory. Only response
positions have a target, so the head runs on those alone (`logits_to_keep` with a boolean mask).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from train.data import IGNORE

MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def target_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) at every response position of `batch`, and the example each belongs to."""
    device = next(p.device for p in model.parameters())
    mask = batch["targets"] != IGNORE
    inputs = {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch}
    out = model(**inputs, logits_to_keep=mask.to(device), use_cache=False)
    logits = out.logits.float()                      # [response positions, vocab]
    targets = batch["targets"][mask].to(device)
    logprobs = -F.cross_entropy(logits, targets, reduction="none")
    return logprobs, batch["owner"][mask].to(device)


def response_nll(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the response tokens, and how many there are."""
    logprobs, _ = target_logprobs(model, batch)
    return -logprobs.sum(), logprobs.numel()


def autocast(model, dtype: torch.dtype):
    """Compute in `dtype` (bf16 or fp16) under autocast; fp32 runs as is.

    prepare_model_for_kbit_training keeps norms and the head in fp32 for stability, so without
    autocast every matmul would run in fp32 whatever bnb_4bit_compute_dtype says.
    """
    device = next(p.device for p in model.parameters())
    return torch.autocast(device.type, dtype=dtype, enabled=dtype in (torch.bfloat16, torch.float16))


def count_targets(batch: dict) -> int:
    return int((batch["targets"] != IGNORE).sum())
