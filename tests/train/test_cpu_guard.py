"""bitsandbytes' CPU eval-mode bug: an evaluation pass must not change later gradients.

After a forward pass in eval mode without grad, `Linear4bit` repacks its weight in place for a fused
CPU kernel and the LoRA gradients of later steps come out wrong. load_base turns that path off; this
test proves the gradients of a training step are identical with and without an evaluation before it,
and (on CPUs where the repacking path exists) that they are not without the guard.
"""

from __future__ import annotations

import torch
from bitsandbytes.functional import has_avx512bf16
from bitsandbytes.nn import Linear4bit
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

from train.data import collate, encode_records
from train.loss import response_nll
from train.models import load_base
from train.recipe import eval_loss


def _lora_grads(tiny_model, batch, examples, *, evaluate_first: bool, guard: bool) -> torch.Tensor:
    torch.manual_seed(0)
    model = load_base(tiny_model, four_bit=True)
    if not guard:   # undo the guard, to show what it prevents
        for module in model.modules():
            if isinstance(module, Linear4bit):
                module.support_avx512bf16_for_cpu = True
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    # init_lora_weights=False: B is not zero, so every LoRA matrix gets a gradient
    model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", lora_dropout=0.0,
                                             init_lora_weights=False))
    if evaluate_first:
        if guard:
            eval_loss(model, examples, batch_size=4, pack=True, pad_id=0)   # the trainer's own evaluation
        else:
            model.eval()
            with torch.no_grad():
                response_nll(model, batch)
    model.train()
    nll, _ = response_nll(model, batch)
    nll.backward()
    return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n])


def test_gradients_are_identical_with_and_without_an_eval_pass(tiny_model, tokenizer, sentiment):
    examples, _ = encode_records(list(sentiment.head(4).iter_rows(named=True)), tokenizer, max_length=256)
    batch = collate(examples, pack=True, pad_id=0)
    plain = _lora_grads(tiny_model, batch, examples, evaluate_first=False, guard=True)
    after_eval = _lora_grads(tiny_model, batch, examples, evaluate_first=True, guard=True)
    assert plain.abs().sum() > 0
    assert torch.equal(plain, after_eval)
    if has_avx512bf16():   # the control: without the guard this CPU takes the repacking path
        unguarded = _lora_grads(tiny_model, batch, examples, evaluate_first=True, guard=False)
        assert ((unguarded - plain).norm() / plain.norm()) > 0.01
