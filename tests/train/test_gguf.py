"""`seedloop export --gguf`: llama.cpp (llama-cpp-python) loads the file, tokenizes as transformers
does, and computes the logits of the merged transformers model (exactly in f32, closely in f16 and
q8_0); the packaged SmolLM2 exported to GGUF gives the same greedy answers; the Modelfile is Ollama's."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from seedloop.core.record import new_record
from tests.conftest import run_cli
from tests.train.test_export_evaluate import trained  # noqa: F401 (fixture)
from tests.train.test_predict import _plain_greedy

PROMPT = "<|im_start|>user\nIs this review positive? review 7: great<|im_end|>\n<|im_start|>assistant\n"


@contextlib.contextmanager
def _llama(path):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, logits_all=True, verbose=False, n_threads=2, seed=0)
    try:
        yield llm
    finally:
        llm.close()


@pytest.fixture(scope="module")
def merged(trained, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.export import merge_adapter

    folder = merge_adapter(trained[0], tmp_path_factory.mktemp("gguf") / "merged", dtype="fp32")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("quant, atol, corr", [("f32", 1e-3, 1 - 1e-6), ("f16", 5e-3, 1 - 1e-5), ("q8_0", 0.1, 0.999)])
def test_llama_cpp_computes_the_merged_models_logits(trained, merged, tmp_path, quant, atol, corr):  # noqa: F811
    done = run_cli("export", trained[0], "--gguf", "--quant", quant, "--out", tmp_path / "student.gguf")
    assert done.returncode == 0, done.stderr[-2000:]
    model, tokenizer = merged
    ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    with _llama(tmp_path / "student.gguf") as llm:
        assert llm.tokenize(PROMPT.encode(), add_bos=False, special=True) == ids    # the vocabulary and merges
        llm.eval(ids)
        got = np.array(llm.scores[:len(ids)])
    assert np.abs(got - expected).max() < atol
    assert min(np.corrcoef(g, e)[0, 1] for g, e in zip(got, expected)) > corr
    assert (got.argmax(-1) == expected.argmax(-1)).all()
    modelfile = (tmp_path / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./student.gguf") and 'PARAMETER stop "<|im_end|>"' in modelfile


def test_packaged_student_gives_the_same_greedy_answers(tmp_path):
    from train.inference import load_for_inference

    done = run_cli("export", "local", "--gguf", "--out", tmp_path / "smollm2.gguf")
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in (tmp_path / "Modelfile").read_text()
    model, tokenizer = load_for_inference("local")
    questions = ["Name a colour.", "What is the capital of France?", "Say hello in French."]
    with _llama(tmp_path / "smollm2.gguf") as llm:
        for question in questions:
            expected, _ = _plain_greedy(model, tokenizer, new_record(question, ""), 8)
            reply = llm.create_chat_completion([{"role": "user", "content": question}], max_tokens=8, temperature=0.0)
            assert reply["choices"][0]["message"]["content"].strip() == expected


def test_classifiers_and_unknown_quants_are_refused(tmp_path):
    bad = run_cli("export", "local", "--gguf", "--quant", "q4_k", "--out", tmp_path / "x.gguf")
    assert bad.returncode == 2 and "f32, f16, q8_0" in bad.stderr and not (tmp_path / "x.gguf").exists()
