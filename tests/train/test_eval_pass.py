"""evaluate()'s single pass (train.eval_pass) against the separate passes it replaced: the trainer's
loss, `answer()`'s generation and `score_options()`'s scores of every label, on real models."""

from __future__ import annotations

import math

import pytest
import torch

from tests.train.conftest import sentiment_frame
from train.data import encode_records
from train.eval_pass import evaluation_pass
from train.inference import answer, load_for_inference, option_token_ids, score_options
from train.recipe import eval_loss

CHAT = {"id": "chat", "output": None, "messages": [
    {"role": "user", "content": "review 7: great"}, {"role": "assistant", "content": "positive"},
    {"role": "user", "content": "review 8: awful"}, {"role": "assistant", "content": "negative"}]}


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    from train.recipe import train

    out = tmp_path_factory.mktemp("eval-pass") / "adapter"     # QLoRA: a 4-bit base, as by default
    train(sentiment_frame(40), tiny_model, out, report_to="none", batch_size=4, max_steps=4, lr=1e-2,
          max_length=96, gradient_checkpointing=False, lora_dropout=0.0, eval_fraction=0.0)
    return out


@pytest.fixture(scope="module")
def flat_model(tiny_model, tmp_path_factory):
    """The tiny Llama with its final norm zeroed: every logit is 0, every next token uniform."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    out = tmp_path_factory.mktemp("eval-pass") / "flat"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return out


def test_one_pass_gives_the_loss_answers_and_best_label_of_the_separate_passes(adapter):
    model, tok = load_for_inference(adapter)
    records = sentiment_frame(50).tail(9).to_dicts()
    records[2]["input"] += ", and then a much longer tail that pads every other row of its batch" * 2
    records.append(CHAT)     # two answers in one example: its loss needs a pass of its own, as in training
    labels = ["positive", "negative", "neutral", "mixed feelings"]
    read = evaluation_pass(model, tok, records, options=option_token_ids(tok, labels), max_new_tokens=6,
                           batch_size=4, max_length=1024)
    examples, _ = encode_records(records, tok, max_length=1024)
    assert read.loss == pytest.approx(eval_loss(model, examples, batch_size=4, pack=True, pad_id=tok.pad_token_id),
                                      rel=1e-5)
    assert read.answers == [a.text for a in answer(model, tok, records, max_new_tokens=6, batch_size=4)]
    assert read.best_option == score_options(model, tok, records, labels).argmax(axis=1).tolist()
    assert read.generated == len(records)    # this tiny model never ends its answers, so generate ran for all


def test_ties_and_the_loss_of_a_uniform_model(flat_model):
    model, tok = load_for_inference(flat_model)
    records = sentiment_frame(6).to_dicts()
    # 'b' and 'a' tie (3 tokens each, every token log 1/V): the lower index wins, as numpy's argmax
    labels = ["a much longer label", "b", "a"]
    read = evaluation_pass(model, tok, records, options=option_token_ids(tok, labels), max_new_tokens=3,
                           batch_size=4, max_length=1024)
    assert read.best_option == score_options(model, tok, records, labels).argmax(axis=1).tolist() == [1] * 6
    assert read.loss == pytest.approx(math.log(len(tok)), rel=1e-6)


def test_greedy_answers_are_read_from_a_reference_the_model_would_generate():
    model, tok = load_for_inference("local")     # the packaged SmolLM2-135M-Instruct, untrained
    questions = ["Is the sky blue? Answer yes or no.", "What is 2 + 2? Answer with a number.",
                 "Is fire cold? Answer yes or no."]
    own = answer(model, tok, [{"instruction": q} for q in questions], max_new_tokens=12)
    ended = [len(a.token_ids) < 12 for a in own]      # answers that end before the token limit
    assert ended == [True, True, False], [a.text for a in own]
    records = [{"instruction": q, "output": a.text} for q, a in zip(questions, own)]
    records.append({"instruction": questions[0], "output": "Certainly not."})
    read = evaluation_pass(model, tok, records, options=None, max_new_tokens=12, batch_size=8, max_length=1024)
    assert read.answers == [a.text for a in own] + [own[0].text]
    examples, _ = encode_records(records, tok, max_length=1024)
    assert read.loss == pytest.approx(eval_loss(model, examples, batch_size=8, pack=True, pad_id=tok.pad_token_id),
                                      rel=1e-5)
    # the two references that are the model's own ended answers need no generation; the cut one and the
    # wrong one do
    assert read.generated == 2


def test_cpu_inference_uses_the_4bit_weights_dequantized_once_with_the_adapter_merged(adapter):
    from bitsandbytes.nn import Linear4bit
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from train.inference import adapter_base, adapter_train_config
    from train.models import load_base

    model, _ = load_for_inference(adapter)
    assert not any(isinstance(m, (Linear4bit, LoraLayer)) for m in model.modules())
    base = load_base(adapter_base(adapter, adapter_train_config(adapter)), four_bit=True, dtype="fp32")
    as_trained = PeftModel.from_pretrained(base, str(adapter)).eval()
    assert any(isinstance(m, Linear4bit) for m in as_trained.modules())
    ids = torch.tensor([[1, 5, 9, 200, 31, 7, 4000, 12]])
    with torch.no_grad():
        merged, reference = (m(input_ids=ids).logits.log_softmax(-1) for m in (model, as_trained))
    torch.testing.assert_close(merged, reference, atol=1e-4, rtol=0)
