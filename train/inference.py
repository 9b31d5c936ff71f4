"""A trained model at work: load base + adapter, answer records greedily, score given answers.

Prompts come from `train.chat.render_prompt`, the same text the model was trained on, and scores
from `train.loss.target_logprobs`, the same computation as the training loss.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from seedloop.core.errors import InputError
from train.chat import render_prompt, setup_chat_template
from train.data import IGNORE, Example, collate, encode_record
from train.loss import target_logprobs
from train.models import disable_cpu_4bit_repack, load_base, resolve_base


@dataclass
class Answer:
    text: str
    token_ids: list[int]
    token_logprobs: list[float]   # log-probability of each generated token under the model
    token_entropies: list[float]  # entropy (nats) of the model's next-token distribution at each step


def load_for_inference(model_dir: str | Path, *, four_bit: bool | None = None, dtype: str | None = None):
    """(model, tokenizer) in eval mode, from a training output folder (base + adapter, the base loaded
    as it was trained unless `four_bit` says otherwise), a merged or plain Hugging Face folder, or
    `local` for the untrained packaged student.

    On a CPU the weights load in fp32 unless `dtype` says otherwise: measured here (AVX512-BF16, 2
    cores) scoring 16 items x 8 label options took 12.9 s in fp32 and 19.3 s in bf16, and bf16's
    log-probabilities were off by up to 0.85 nats. On a CPU a 4-bit base is also dequantized once
    and the adapter merged into it (see `_merged_on_cpu`)."""
    from transformers import AutoTokenizer

    if dtype is None and not torch.cuda.is_available():
        dtype = "fp32"

    folder = resolve_base(model_dir) if not (Path(model_dir) / "adapter_config.json").is_file() else Path(model_dir)
    if not (folder / "adapter_config.json").is_file():
        model = load_base(folder, four_bit=bool(four_bit), dtype=dtype or "auto")
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        trained = adapter_train_config(folder)
        base = adapter_base(folder, trained)
        model = load_base(base, four_bit=trained.get("four_bit", True) if four_bit is None else four_bit,
                          dtype=dtype or trained.get("dtype", "auto"))
        model = _merged_on_cpu(model, folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    setup_chat_template(tokenizer, "auto")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    disable_cpu_4bit_repack(model)
    model.eval()
    return model, tokenizer


def _merged_on_cpu(model, folder: Path):
    """Base + adapter; on a CPU with fp32 weights, one plain model with the adapter merged in.

    bitsandbytes on a CPU dequantizes every 4-bit weight again at every forward pass (a fifth of an
    evaluation's time, profiled on SmolLM2-135M) and peft adds two small matmuls per layer. The
    weights dequantized once are exactly the ones the 4-bit layers compute with (log-probabilities
    identical here), and merging the adapter into fp32 weights moves them by float rounding only
    (at most 5e-4 nats on SmolLM2-135M). The cost: fp32 memory for the base. On a GPU the 4-bit
    weights stay.
    """
    from peft import PeftModel

    if torch.cuda.is_available() or next(model.parameters()).device.type != "cpu":
        return PeftModel.from_pretrained(model, str(folder))
    if getattr(model, "hf_quantizer", None) is not None:
        # transformers warns that the weights are dequantized in fp32 and cast to fp32: as intended
        logging.getLogger("transformers.integrations.bitsandbytes").setLevel(logging.ERROR)
        model = model.dequantize()
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return PeftModel.from_pretrained(model, str(folder))   # merging into bf16 would round the sum
    return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()


def adapter_train_config(folder: Path) -> dict:
    """The training config saved with an adapter (train_config.yaml), or {} when there is none."""
    path = folder / "train_config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def adapter_base(folder: Path, trained: dict) -> Path:
    """The base an adapter was trained on: its recorded path if it still exists, else its spec."""
    for candidate in (trained.get("base_path"), trained.get("base"),
                      json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")):
        if candidate and (Path(candidate).is_dir() or str(candidate).lower() in ("local", "smollm2")):
            return resolve_base(candidate)
    raise InputError("cannot find the base model this adapter was trained on (looked at train_config.yaml "
                     "base_path/base and adapter_config.json)", file=str(folder))


def stop_ids(tokenizer) -> list[int]:
    """The token ids that end an answer: end of sequence, and ChatML's end of turn when it is a token."""
    return [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>",)
                                       if t in tokenizer.get_vocab()]


def decode_answer(tokenizer, ids: list[int], stop: list[int]) -> tuple[str, int]:
    """(the answer's text, how many tokens it used): generated ids cut at the first stop id."""
    n = next((i for i, t in enumerate(ids) if t in stop), len(ids))
    # with the ChatML fallback the end-of-turn marker is plain text: cut there
    return tokenizer.decode(ids[:n], skip_special_tokens=True).split("<|im_end|>")[0].strip(), n


def _prompts(tokenizer, records: list[dict], device):
    tokenizer.padding_side = "left"   # generation continues from the right end of every row
    prompts = [render_prompt(r, tokenizer) for r in records]
    return tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)


@torch.no_grad()
def answer(model, tokenizer, records: list[dict], *, max_new_tokens: int = 64, batch_size: int = 8,
           progress=None) -> list[Answer]:
    """Greedy answers to `records` (their prompts as in training), with per-token log-probabilities
    and next-token entropies, from the same forward passes that generate the answer."""
    device = next(p.device for p in model.parameters())
    stop = stop_ids(tokenizer)
    answers = []
    for start in range(0, len(records), batch_size):
        inputs = _prompts(tokenizer, records[start:start + batch_size], device)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                             pad_token_id=tokenizer.pad_token_id, return_dict_in_generate=True, output_logits=True)
        new = out.sequences[:, inputs["input_ids"].shape[1]:]
        logp = torch.stack(out.logits, dim=1).float().log_softmax(-1)          # (batch, steps, vocab)
        chosen = logp.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        for ids, lps, hs in zip(new.tolist(), chosen.tolist(), entropy.tolist()):
            text, n = decode_answer(tokenizer, ids, stop)
            answers.append(Answer(text, ids[:n], lps[:n], hs[:n]))
        if progress:
            progress(len(answers))
    return answers


@torch.no_grad()
def sample_answers(model, tokenizer, records: list[dict], *, n: int = 5, temperature: float = 1.0,
                   max_new_tokens: int = 64, batch_size: int = 8, seed: int = 0) -> list[list[str]]:
    """`n` sampled answers per record (for sampling disagreement); seeded, so a re-run repeats."""
    device = next(p.device for p in model.parameters())
    stop = stop_ids(tokenizer)
    torch.manual_seed(seed)
    samples = []
    for start in range(0, len(records), batch_size):
        inputs = _prompts(tokenizer, records[start:start + batch_size], device)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                             top_k=0, top_p=1.0, num_return_sequences=n, eos_token_id=stop,
                             pad_token_id=tokenizer.pad_token_id)
        texts = [decode_answer(tokenizer, ids, stop)[0] for ids in out[:, inputs["input_ids"].shape[1]:].tolist()]
        samples += [texts[i:i + n] for i in range(0, len(texts), n)]
    return samples


@torch.no_grad()
def response_logprobs(model, tokenizer, records: list[dict], *, batch_size: int = 16,
                      max_length: int = 4096) -> list[tuple[float, int]]:
    """For each record, the summed log-probability of its `output` as the answer, and its token count.

    The end-of-turn marker counts as part of the answer, so 'card' and 'card_arrival' differ.
    """
    examples = []
    for record in records:
        encoded = encode_record(record, tokenizer, max_length=max_length, overlong="drop")
        if not isinstance(encoded, Example):
            raise InputError(f"cannot score this record: {encoded.replace('_', ' ')}", line=f"record {record.get('id')}",
                             field="output")
        examples.append(encoded)
    scores = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        logprobs, owner = target_logprobs(model, collate(chunk, pack=True, pad_id=tokenizer.pad_token_id or 0))
        sums = torch.zeros(len(chunk), dtype=torch.float64).index_add_(0, owner.cpu(), logprobs.double().cpu())
        counts = [sum(label != IGNORE for label in ex.labels[1:]) for ex in chunk]
        scores += list(zip(sums.tolist(), counts))
    return scores


def option_token_ids(tokenizer, options: list[str]) -> list[list[int]]:
    """Each option as the response tokens training would use (end-of-turn marker included)."""
    ids = []
    for option in options:
        example = encode_record({"instruction": "?", "output": option}, tokenizer, max_length=1 << 20)
        ids.append([t for t, label in zip(example.input_ids, example.labels) if label != IGNORE])
    return ids


@torch.no_grad()
def score_options(model, tokenizer, records: list[dict], options: list[str], *, batch_size: int = 8,
                  progress=None):
    """A (records x options) array: the log-probability of each option as the record's answer.

    The prompt runs once per record and its key/value cache is shared by every option, so K options
    cost one prompt plus K short continuations instead of K full sequences (equal, to float error, to
    scoring each option on its own with `response_logprobs`: tests/train/test_export_evaluate.py and
    tests/active_learning/test_scoring.py check that).
    """
    import numpy as np

    device = next(p.device for p in model.parameters())
    opts = option_token_ids(tokenizer, options)
    k, width = len(opts), max(len(o) for o in opts)
    opt_ids = torch.tensor([o + [0] * (width - len(o)) for o in opts], device=device)        # (k, width)
    opt_mask = torch.tensor([[1] * len(o) + [0] * (width - len(o)) for o in opts], device=device)
    prompts = [{**r, "messages": _without_answer(r["messages"]) if r.get("messages") else None, "output": None}
               for r in records]
    scores = np.zeros((len(records), k))
    for start in range(0, len(records), batch_size):
        inputs = _prompts(tokenizer, prompts[start:start + batch_size], device)
        mask = inputs["attention_mask"]
        b = mask.shape[0]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=inputs["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)                                  # only the last position's logits
        first = out.logits[:, -1].float().log_softmax(-1)                                       # (b, vocab)
        cache = out.cache
        cache.batch_repeat_interleave(k)
        ids = opt_ids.repeat(b, 1)                                                               # (b*k, width)
        cont_mask = opt_mask.repeat(b, 1)
        full_mask = torch.cat([mask.repeat_interleave(k, 0), cont_mask], dim=1)
        cont_pos = positions[:, -1:].repeat_interleave(k, 0) + 1 + torch.arange(width, device=device)
        logits = model(input_ids=ids, attention_mask=full_mask, position_ids=cont_pos, cache=cache,
                       use_cache=False).logits.float().log_softmax(-1)                            # (b*k, width, vocab)
        # token 0 of each option is predicted by the prompt's last position, token t by option position t-1
        lp = first.repeat_interleave(k, 0).gather(-1, ids[:, :1]).squeeze(-1)
        if width > 1:
            rest = logits[:, :-1].gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * cont_mask[:, 1:]
            lp = lp + rest.sum(-1)
        scores[start:start + b] = lp.view(b, k).double().cpu().numpy()
        if progress:
            progress(start + b)
    return scores


def _without_answer(messages: list[dict]) -> list[dict]:
    return messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages
