"""Real (tiny) models whose uncertainty is known in advance, built by editing one weight.

The tiny Llama ties its output head to its input embeddings, and logits = norm(h) . E^T:
- flat:   final norm weight 0 -> every logit is 0 -> every next-token distribution is uniform
          (entropy and mnlp = log V exactly; equal-length label options equally likely)
- forced: attention and MLP outputs zeroed, final norm weight x1000 -> the hidden state is the
          current token's own embedding, scaled until the softmax is one-hot on the nearest token
          (entropy, mnlp and label uncertainty ~ 0)
"""

from __future__ import annotations

import pytest


def _edited(src, dst, edit):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with torch.no_grad():
        edit(model)
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


def _flat(model):
    model.model.norm.weight.zero_()


def _forced(model):
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    model.model.norm.weight.mul_(1000.0)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    from train.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("al-models") / "tiny")


@pytest.fixture(scope="session")
def flat_model(tiny_base, tmp_path_factory):
    return _edited(tiny_base, tmp_path_factory.mktemp("al-models") / "flat", _flat)


@pytest.fixture(scope="session")
def forced_model(tiny_base, tmp_path_factory):
    return _edited(tiny_base, tmp_path_factory.mktemp("al-models") / "forced", _forced)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    from train.models import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("al-models") / "tiny-bert")
