"""Tokens/s of a `seedloop export --gguf` file under llama.cpp beside the merged model under transformers
(issue 15).

    .venv/bin/python benchmarks/gguf_speed.py [--prompts 6] [--tokens 64] [--quants f16,q8_0]

The packaged SmolLM2-135M-Instruct (what an adapter merges into) is exported at each --quants, then
both sides answer the same --prompts chat prompts greedily, one at a time (a single stream, as a
chat user sees it), --tokens new tokens each (end-of-turn ignored, so every side makes the same number
of tokens), on every core:
  llama.cpp     llama-cpp-python, n_threads = cores, the GGUF file;
  transformers  model.generate with its KV cache, fp32 (bf16 is slower on these CPUs, see
                train/inference.py), torch's threads = cores.
Model loading is left out of both. Printed: tokens/s per side and the ratio to transformers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = ["Name three colours.", "What is the capital of France?", "Write a haiku about the sea.",
             "Explain what a bank transfer is.", "Give me a tip for learning to cook.", "Why is the sky blue?",
             "Describe a cat in one sentence.", "What is 12 times 12?"]


def transformers_side(prompts: list[str], tokens: int) -> float:
    import torch

    from train.inference import load_for_inference

    model, tokenizer = load_for_inference("local")
    total, seconds = 0, 0.0
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
            started = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            seconds += time.perf_counter() - started
            total += out.shape[1] - ids["input_ids"].shape[1]
    return total / seconds


def llama_cpp_side(path: Path, prompts: list[str], tokens: int) -> float:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=os.cpu_count(), verbose=False)
    total, seconds = 0, 0.0
    try:
        for prompt in prompts:
            llm.reset()
            started = time.perf_counter()
            out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0,
                                        logit_bias={llm.token_eos(): -100.0})   # never stops early
            seconds += time.perf_counter() - started
            total += out["usage"]["completion_tokens"]
    finally:
        llm.close()
    return total / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--quants", default="f16,q8_0")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from train.chat import render_prompt
    from train.gguf_export import export_gguf
    from train.models import packaged_student

    tokenizer = AutoTokenizer.from_pretrained(packaged_student())
    prompts = [render_prompt({"instruction": q}, tokenizer) for q in (QUESTIONS * 2)[:args.prompts]]
    rates = {"transformers (fp32, KV cache)": transformers_side(prompts, args.tokens)}
    with tempfile.TemporaryDirectory() as tmp:
        for quant in args.quants.split(","):
            path = export_gguf("local", Path(tmp) / f"smollm2-{quant}.gguf", quant=quant)
            rates[f"llama.cpp ({quant} GGUF)"] = llama_cpp_side(path, prompts, args.tokens)
    base = rates["transformers (fp32, KV cache)"]
    print(f"\nSmolLM2-135M, {args.prompts} prompts x {args.tokens} tokens, one stream, {os.cpu_count()} cores")
    print(f"  {'side':32s} {'tokens/s':>9s} {'ratio':>6s}")
    for name, rate in rates.items():
        print(f"  {name:32s} {rate:9.1f} {rate / base:6.2f}")


if __name__ == "__main__":
    main()
