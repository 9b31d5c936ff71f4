"""Everything `evaluate()` needs from a generative model, from one run of each prompt.

Each prompt runs once (its table's shared prefix once in all; see train.prompt_cache), and from its
key/value cache come:
- the loss: the log-probability of the record's reference answer (the same response tokens and
  targets as the training loss). Records of another shape (several assistant turns) get a loss
  pass of their own, as in training;
- the best-scoring label, found without scoring every label: an option's score is at most the
  log-probability of its first token (every later token adds a log-probability <= 0), and those
  come free with the prompt. So the likeliest-looking option is scored first, then only options
  whose first token still beats the best full score; the argmax (ties to the lower index) is the
  argmax over all options;
- the greedy answer: a scored continuation (reference or label) whose every token up to the
  end-of-turn marker is the model's argmax IS the greedy answer, so `model.generate` runs only for
  records whose answer none of them predicted (at most `max_new_tokens` tokens, as generate).

Not handled: a model whose generation config changes greedy choices (repetition penalty, banned
words, ...): its answers always come from `model.generate`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from train.data import IGNORE, collate, encode_record
from train.inference import decode_answer, stop_ids
from train.loss import response_nll
from train.prompt_cache import continuation_logprobs, generate_answers, prompt_batches, prompt_ids

# generation settings that make greedy decoding differ from the argmax of the logits
GREEDY_CHANGERS = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                   "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "min_length": 0,
                   "min_new_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
                   "suppress_tokens": None, "begin_suppress_tokens": None, "sequence_bias": None,
                   "exponential_decay_length_penalty": None, "guidance_scale": None, "watermarking_config": None}


@dataclass
class Reading:
    answers: list[str]                # greedy answer text per record
    loss: float | None                # mean response-token loss, None if no record fits max_length
    best_option: list[int] | None     # index of the best-scoring option per record (when options given)
    dropped: Counter                  # records left out of the loss, by reason
    generated: int                    # records whose answer needed model.generate


def evaluation_pass(model, tokenizer, records: list[dict], *, options: list[list[int]] | None,
                    max_new_tokens: int, batch_size: int, max_length: int, progress=None) -> Reading:
    """Loss, greedy answers and (given `options` as token lists) the best option of every record."""
    prompts = prompt_ids(tokenizer, records)
    targets, others, dropped = _loss_targets(records, prompts, tokenizer, max_length)
    pad_id = tokenizer.pad_token_id or 0
    stop, shortcut = stop_ids(tokenizer), _plain_greedy(model)
    n = len(records)
    answers, best, target_lp, generated, done = [""] * n, [None] * n, [None] * n, 0, 0
    for batch in prompt_batches(model, prompts, batch_size=batch_size, pad_id=pad_id):
        known = _score_batch(model, batch, [targets[i] for i in batch.index], options)
        texts = [_greedy_text(tokenizer, k, stop, max_new_tokens) if shortcut else None for k in known]
        rest = [row for row, text in enumerate(texts) if text is None]
        if rest:
            new, _ = generate_answers(model, batch, rest, max_new_tokens=max_new_tokens, stop=stop, pad_id=pad_id)
            for row, ids in zip(rest, new.tolist()):
                texts[row] = decode_answer(tokenizer, ids, stop)[0]
        for row, i in enumerate(batch.index):
            answers[i] = texts[row]
            target_lp[i] = known[row][tuple(targets[i])][0] if targets[i] else None
            best[i] = _best(options, known[row]) if options else None
        generated, done = generated + len(rest), done + len(batch.index)
        if progress:
            progress(done)
    loss = _mean_loss(model, target_lp, targets, others, batch_size=batch_size, pad_id=pad_id)
    return Reading(answers, loss, best if options else None, dropped, generated)


def _score_batch(model, batch, targets: list[list[int] | None], options: list[list[int]] | None) -> list[dict]:
    """Per row, {continuation (tuple): (log-probability, leading greedy tokens)} for its reference answer
    and every option that can still be the best one."""
    known = [{} for _ in batch.index]
    wanted = [[t] if t else [] for t in targets]
    if options:
        # the first token's log-probability bounds an option's score, and the prompt pass gave them all
        bounds = batch.first[:, [o[0] for o in options]].tolist()
        for row, bound in enumerate(bounds):
            wanted[row].append(options[max(range(len(options)), key=lambda k: (bound[k], -k))])
    _score(model, batch, known, wanted)
    if options:
        _score(model, batch, known, [_may_win(options, bound, k) for bound, k in zip(bounds, known)])
    return known


def _score(model, batch, known: list[dict], wanted: list[list[list[int]]]) -> None:
    pairs = [(row, c) for row, cs in enumerate(wanted) for c in dict.fromkeys(map(tuple, cs)) if c not in known[row]]
    if not pairs:
        return
    scores, greedy = continuation_logprobs(model, batch, [row for row, _ in pairs], [list(c) for _, c in pairs])
    for (row, c), score, lead in zip(pairs, scores, greedy):
        known[row][c] = (score, lead)


def _best(options: list[list[int]], known: dict) -> int:
    """The index of the highest-scoring option among the scored ones (the lower index on a tie)."""
    scored = [k for k, o in enumerate(options) if tuple(o) in known]
    return max(scored, key=lambda k: (known[tuple(options[k])][0], -k))


def _may_win(options: list[list[int]], bounds: list[float], known: dict) -> list[list[int]]:
    """Unscored options whose bound still beats (or ties, with a lower index) the best score so far."""
    top = _best(options, known)
    score = known[tuple(options[top])][0]
    return [o for k, o in enumerate(options)
            if tuple(o) not in known and (bounds[k] > score or (bounds[k] == score and k < top))]


def _greedy_text(tokenizer, known: dict, stop: list[int], max_new_tokens: int) -> str | None:
    """The greedy answer, if a scored continuation is it: argmax at every token through the first stop
    token, which generate would reach within max_new_tokens."""
    for continuation, (_, lead) in known.items():
        end = next((t for t, token in enumerate(continuation) if token in stop), None)
        if end is not None and lead > end and end < max_new_tokens:
            return decode_answer(tokenizer, list(continuation), stop)[0]
    return None


def _plain_greedy(model) -> bool:
    config = getattr(model, "generation_config", None)
    return config is None or all(getattr(config, key, None) in (None, plain) for key, plain in GREEDY_CHANGERS.items())


def _loss_targets(records: list[dict], prompts: list[list[int]], tokenizer, max_length: int):
    """Per record, the response tokens of its loss when they are all that follows its prompt (else None);
    the examples of other shapes, for a pass of their own; records left out, by reason (as training)."""
    targets, others, counts = [], [], Counter()
    for record, prompt in zip(records, prompts):
        example = encode_record(record, tokenizer, max_length=max_length, overlong="drop")
        if isinstance(example, str):
            counts[example] += 1
            targets.append(None)
            continue
        counts["truncated"] += example.truncated
        n = len(prompt)
        simple = (example.input_ids[:n] == prompt and set(example.labels[:n]) == {IGNORE}
                  and IGNORE not in example.labels[n:])
        targets.append(example.input_ids[n:] if simple else None)
        if not simple:
            others.append(example)
    return targets, others, counts


@torch.no_grad()
def _mean_loss(model, target_lp, targets, others, *, batch_size: int, pad_id: int) -> float | None:
    total = -sum(lp for lp in target_lp if lp is not None)
    count = sum(len(t) for t in targets if t)
    for start in range(0, len(others), batch_size):
        nll, n = response_nll(model, collate(others[start:start + batch_size], pack=True, pad_id=pad_id))
        total, count = total + nll.item(), count + n
    return total / count if count else None
