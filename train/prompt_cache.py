"""Prompts run once and read several ways: answer probabilities, greedy answers, from one cache.

- A table's prompts usually start alike: the system prompt, the instruction, the list of labels (119
  of 138 tokens of each Banking77 prompt with 10 intents). That shared prefix runs once for the whole
  table; every batch starts from a copy of its key/value cache and computes only the rest of each
  prompt. Rows are laid out [shared prefix][left padding][rest], so every prompt ends in the last
  column and generation continues from there; position ids skip the padding.
- `continuation_logprobs`: the log-probability of given continuations (labels, a reference answer)
  after a batch's prompts, each on a copy of its prompt's cache, so K continuations cost their own
  tokens rather than K prompts. The last token of a continuation is only predicted, never fed. It
  also says how many leading tokens greedy decoding would have picked itself.
- `generate_answers`: greedy answers by `model.generate`, continuing from the prompt cache.

Prompts are batched by length (less padding) and a batch's rows follow `PromptBatch.index`.
Not handled: caches other than transformers' DynamicCache (sliding-window or recurrent models).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from train.chat import render_prompt


@dataclass
class PromptBatch:
    index: list[int]               # the record behind each row
    input_ids: torch.Tensor        # (b, L): [shared prefix][left padding][rest of the prompt]
    attention_mask: torch.Tensor   # (b, L)
    cache: object                  # DynamicCache holding the L prompt columns
    first: torch.Tensor            # (b, vocab) fp32 log-probabilities of the answer's first token


def model_device(model):
    return next(p.device for p in model.parameters())


def prompt_ids(tokenizer, records: list[dict]) -> list[list[int]]:
    """Each record's prompt as tokens: `render_prompt`'s text, tokenized as training tokenizes it."""
    return [tokenizer(render_prompt(r, tokenizer), add_special_tokens=False)["input_ids"] for r in records]


def shared_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each prompt at least one token of its own."""
    return max(0, min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)) if prompts else 0


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _copy_rows(cache, rows: torch.Tensor | None = None, repeat: int = 1):
    """A new DynamicCache with the given rows of `cache` (all of them, `repeat` times, when rows is None)."""
    from transformers import DynamicCache

    pairs = []
    for layer in cache.layers:
        keys, values = layer.keys, layer.values
        if rows is not None:
            keys, values = keys.index_select(0, rows), values.index_select(0, rows)
        pairs.append((keys.expand(repeat, -1, -1, -1) if repeat > 1 else keys,
                      values.expand(repeat, -1, -1, -1) if repeat > 1 else values))
    return DynamicCache(pairs)


@torch.no_grad()
def prompt_batches(model, prompts: list[list[int]], *, batch_size: int, pad_id: int):
    """Run the prompts in batches of similar length; yields a PromptBatch per batch."""
    device = model_device(model)
    shared = shared_length(prompts)
    prefix = None
    if shared:
        prefix = model(input_ids=torch.tensor([prompts[0][:shared]], device=device), use_cache=True,
                       logits_to_keep=1).cache
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        rests = [prompts[i][shared:] for i in index]
        width = max(map(len, rests))
        head = prompts[index[0]][:shared]
        ids = torch.tensor([head + [pad_id] * (width - len(r)) + r for r in rests], device=device)
        mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rests], device=device)
        cache = _copy_rows(prefix, repeat=len(index)) if prefix is not None else None
        out = model(input_ids=ids[:, shared:], attention_mask=mask, position_ids=_positions(mask)[:, shared:],
                    cache=cache, use_cache=True, logits_to_keep=1)
        yield PromptBatch(index, ids, mask, out.cache, out.logits[:, -1].float().log_softmax(-1))


@torch.no_grad()
def continuation_logprobs(model, batch: PromptBatch, rows: list[int], continuations: list[list[int]], *,
                          max_rows: int = 64) -> tuple[list[float], list[int]]:
    """For each pair (row of `batch`, token list): the summed log-probability of the tokens as what follows
    that row's prompt, and how many of its leading tokens are the model's greedy choice. Each pass takes
    at most `max_rows` pairs, as each needs its own copy of its prompt's cache."""
    scores, greedy = [], []
    for start in range(0, len(rows), max_rows):
        s, g = _continuations(model, batch, rows[start:start + max_rows], continuations[start:start + max_rows])
        scores += s
        greedy += g
    return scores, greedy


def _continuations(model, batch: PromptBatch, rows: list[int], conts: list[list[int]]):
    device = batch.input_ids.device
    pick = torch.tensor(rows, device=device)
    first = batch.first.index_select(0, pick)
    heads = torch.tensor([c[0] for c in conts], device=device)
    logps = [[lp] for lp in first.gather(-1, heads[:, None]).squeeze(-1).tolist()]
    hits = [[hit] for hit in (first.argmax(-1) == heads).tolist()]
    fed = [c[:-1] for c in conts]        # token t is predicted by the position of token t-1
    width = max(map(len, fed))
    if width:
        ids = torch.tensor([f + [0] * (width - len(f)) for f in fed], device=device)
        own = torch.tensor([[1] * len(f) + [0] * (width - len(f)) for f in fed], device=device)
        prompt_mask = batch.attention_mask.index_select(0, pick)
        positions = prompt_mask.sum(-1, keepdim=True) + torch.arange(width, device=device)
        out = model(input_ids=ids, attention_mask=torch.cat([prompt_mask, own], 1), position_ids=positions,
                    cache=_copy_rows(batch.cache, pick), use_cache=True, logits_to_keep=own.bool())
        logp = out.logits.float().log_softmax(-1)                       # (fed positions, vocab), row by row
        targets = torch.tensor([t for c in conts for t in c[1:]], device=device)
        chosen = logp.gather(-1, targets[:, None]).squeeze(-1).tolist()
        agree = (logp.argmax(-1) == targets).tolist()
        at = 0
        for i, c in enumerate(conts):
            logps[i] += chosen[at:at + len(c) - 1]
            hits[i] += agree[at:at + len(c) - 1]
            at += len(c) - 1
    leading = [next((n for n, hit in enumerate(h) if not hit), len(h)) for h in hits]
    return [float(sum(lp)) for lp in logps], leading


@torch.no_grad()
def generate_answers(model, batch: PromptBatch, rows: list[int], *, max_new_tokens: int, stop: list[int],
                     pad_id: int, output_logits: bool = False):
    """Greedy continuations of the given rows' prompts: (new token ids (n, steps), per-step logits or None)."""
    pick = torch.tensor(rows, device=batch.input_ids.device)
    cache = _copy_rows(batch.cache, pick)
    cache.crop(-1)    # generate needs one token of the prompt to run; it recomputes the last one
    out = model.generate(input_ids=batch.input_ids.index_select(0, pick),
                         attention_mask=batch.attention_mask.index_select(0, pick), cache=cache,
                         max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop, pad_token_id=pad_id,
                         return_dict_in_generate=True, output_logits=output_logits)
    return out.sequences[:, batch.input_ids.shape[1]:], (out.logits if output_logits else None)
