"""Rendering, masking, skipping, splitting and packing, checked against the tokenizer directly."""

from __future__ import annotations

import pytest

from seedloop.core.errors import InputError
from seedloop.core.record import new_record, to_frame
from train.chat import CHATML_FALLBACK, render_prompt, setup_chat_template
from train.data import IGNORE, collate, encode_record, encode_records, split_eval, training_records


def _record(output="negative", **fields):
    return new_record("Classify the sentiment of this review.", "The soup was cold.", output, **fields)


def test_labels_are_exactly_the_answer_and_its_end_of_turn(tokenizer):
    example = encode_record(_record(), tokenizer, max_length=512)
    prompt_ids = tokenizer(render_prompt(_record(), tokenizer), add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    # the prompt the model trains on is token for token the prompt it is asked at inference
    assert example.input_ids[:n] == prompt_ids
    assert example.labels[:n] == [IGNORE] * n
    assert all(label != IGNORE for label in example.labels[n:])
    assert tokenizer.decode(example.labels[n:]) == "negative<|im_end|>\n"
    assert example.input_ids[n:] == example.labels[n:]


def test_every_assistant_turn_of_a_chat_is_learned(tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye."}]
    example = encode_record({"id": "c", "messages": messages}, tokenizer, max_length=512)
    learned = [t if t != IGNORE else None for t in example.labels]
    spans, current = [], []
    for token in learned + [None]:
        if token is None and current:
            spans.append(tokenizer.decode(current))
            current = []
        elif token is not None:
            current.append(token)
    assert spans == ["Hello!<|im_end|>\n", "Goodbye.<|im_end|>\n"]


def test_skipped_rows_are_counted_by_reason():
    df = to_frame([_record(status="accepted"), _record(status="rejected"), _record(output=None),
                   new_record("Say hi.", "", "", status="pending")])
    kept, drops = training_records(df)
    assert len(kept) == 1 and drops == {"rejected": 1, "no_output": 2}
    kept, _ = training_records(df, include_rejected=True)
    assert len(kept) == 2


def test_overlong_records_are_dropped_or_truncated_and_counted(tokenizer):
    long = new_record("Summarize.", "word " * 400, "short")
    ok = _record()
    examples, counts = encode_records([long, ok], tokenizer, max_length=64, overlong="drop")
    assert len(examples) == 1 and counts["too_long"] == 1
    long_answer = new_record("Summarize.", "word " * 10, "answer " * 200)
    examples, counts = encode_records([long_answer, ok], tokenizer, max_length=64, overlong="truncate")
    assert [len(e.input_ids) for e in examples] == [64, len(encode_record(ok, tokenizer, max_length=64).input_ids)]
    assert counts["truncated"] == 1
    # truncation that cuts off the whole answer leaves nothing to learn: dropped, counted
    _, counts = encode_records([long], tokenizer, max_length=64, overlong="truncate")
    assert counts["too_long"] == 1


def test_split_is_stable_as_the_table_grows():
    records = [{"id": f"r{i}"} for i in range(100)]
    _, held = split_eval(records, 0.1)
    assert len(held) == 10
    _, held_more = split_eval(records + [{"id": f"n{i}"} for i in range(100)], 0.1)
    assert len({r["id"] for r in held} & {r["id"] for r in held_more}) >= 7
    assert split_eval(records[:1], 0.5) == (records[:1], [])


def test_a_batch_without_any_label_fails_loudly(tokenizer):
    example = encode_record(_record(), tokenizer, max_length=512)
    example.labels = [IGNORE] * len(example.labels)
    with pytest.raises(InputError, match="no response token to learn from"):
        collate([example], pack=True, pad_id=0)


def test_packed_rows_keep_examples_apart(tokenizer, tiny_model):
    """Log-probabilities of a packed batch equal those of each example run alone."""
    import torch

    from train.loss import target_logprobs
    from train.models import load_base

    model = load_base(tiny_model, four_bit=False, dtype="fp32").eval()
    records = [_record(output=f"label {'x ' * i}") for i in range(4)]
    examples = [encode_record(r, tokenizer, max_length=512) for r in records]
    packed = collate(examples, pack=True, pad_id=0)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    with torch.no_grad():
        together, owner = target_logprobs(model, packed)
        padded, _ = target_logprobs(model, collate(examples, pack=False, pad_id=0))
        alone = torch.cat([target_logprobs(model, collate([e], pack=False, pad_id=0))[0] for e in examples])
    assert owner.tolist() == sorted(owner.tolist()) and set(owner.tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-4)


def test_tokenizer_without_chat_template_gets_chatml_with_eos(tokenizer):
    import copy

    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    with pytest.raises(InputError, match="has no chat template"):
        setup_chat_template(bare, "model")
    assert setup_chat_template(bare, "auto") == "fallback:chatml"
    assert bare.chat_template == CHATML_FALLBACK
    example = encode_record(_record(), bare, max_length=512)
    answer = tokenizer.decode([t for t in example.labels if t != IGNORE])
    assert answer == f"negative<|im_end|>{tokenizer.eos_token}\n"
    assert render_prompt(_record(), bare).endswith("<|im_start|>assistant\n")
