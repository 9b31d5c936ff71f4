"""`seedloop train`, `seedloop evaluate` and `seedloop export`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.syntax import Syntax
from rich.table import Table

from seedloop.cli.common import StepProgress, console, handle_errors, out, parse_labels, quiet_libraries
from seedloop.core.atomic import write_text
from seedloop.core.errors import ConfigError


@handle_errors
def train(
    data: Path = typer.Option(..., "--data", help="Record table (.parquet or .jsonl) to train on."),
    base: str = typer.Option(None, "--base", help="Base model: a Hugging Face folder, 'local' for the packaged "
                             "SmolLM2-135M-Instruct, or 'minilm' for the packaged all-MiniLM-L6-v2 encoder "
                             "(default: minilm for classification, local for generation)."),
    task: str = typer.Option("auto", "--task", help="auto | classification | generation. auto trains a classifier "
                             "when the outputs come from a small label set (at most 50 distinct short outputs, "
                             "each seen twice on average), else a generator."),
    out_dir: Path = typer.Option(..., "--out", help="Output folder: adapter, tokenizer, config, metrics."),
    overrides: list[str] = typer.Argument(None, help="Settings as key=value, e.g. lr=1e-4 epochs=2 "
                                          "(keys: train/configs/qlora.yaml, or classifier.yaml for classifiers)."),
    config: str = typer.Option(None, "--config", help="YAML config file, or a shipped one: qlora (default for "
                               "generation), lora, smoke, classifier (default for classification)."),
    eval_data: Path = typer.Option(None, "--eval-data", help="Held-out table (default: eval_fraction of --data)."),
    four_bit: bool = typer.Option(None, "--4bit/--no-4bit", help="QLoRA on a 4-bit base (default), or plain LoRA."),
    init_adapter: Path = typer.Option(None, "--init-adapter", help="Warm-start from this adapter (a previous "
                                      "round's --out)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its latest checkpoint "
                                "(a finished run is left as it is)."),
    report_to: str = typer.Option(None, "--report-to", help="mlflow (default, file store in OUT/mlruns), "
                                  "wandb or none."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default OUT/mlruns)."),
    objective: str = typer.Option("sft", "--objective", help="sft: learn the answers of a record table | dpo: "
                                  "prefer chosen over rejected answers in a pairs table (`seedloop pairs`; keys "
                                  "in train/configs/dpo.yaml), usually with --init-adapter an SFT adapter."),
) -> None:
    """Fine-tune a student on curated and reviewed records: a classifier (LoRA and a label head) when
    the outputs are labels, else a generator (QLoRA, loss on answer tokens only).

    Rows with status 'rejected' are skipped. The resolved config is printed first and saved with
    the model; metrics.json lands in OUT last. Kill it at any point: `--resume` continues a
    generator from its last checkpoint (a classifier trains again: it takes about a minute).
    """
    from train.config import dump
    from train.task import plan_training

    quiet_libraries()
    if objective == "dpo":
        _refuse_for_dpo(task=task, eval_data=eval_data, report_to=report_to, tracking_uri=tracking_uri)
        return _train_dpo(data, base or "local", out_dir, config, overrides or [], four_bit, init_adapter, resume)
    if objective != "sft":
        raise ConfigError(f"unknown --objective '{objective}': use sft or dpo")
    if int(os.environ.get("RANK", "0")) != 0:   # under `accelerate launch`, the first process speaks for all
        console.quiet = True
    plan = plan_training(data, task=task, base=base, config=config, overrides=overrides or [],
                         four_bit=four_bit, report_to=report_to, tracking_uri=tracking_uri)
    console.print(f"[bold]seedloop train[/] {plan.task}: {data} on {plan.base} -> {out_dir}"
                  + (f" (warm start from {init_adapter})" if init_adapter else ""), highlight=False)
    console.print(Syntax(dump(plan.settings), "yaml", theme="ansi_dark", background_color="default"))
    with _TrainProgress() as progress:
        metrics = plan.run(out_dir, eval_data=eval_data, init_adapter=init_adapter, resume=resume,
                           progress=progress.update)
    _train_summary(metrics, out_dir)


def _refuse_for_dpo(**given) -> None:
    used = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, "auto")]
    if used:
        raise ConfigError(f"{', '.join(used)}: not used with --objective dpo (it trains a generator, holds out "
                          "eval_fraction of the pairs, and tracks nothing)")


def _train_dpo(data: Path, base: str, out_dir: Path, config, overrides: list[str], four_bit, init_adapter, resume):
    from train.config import dump, resolve
    from train.dpo import train_dpo

    settings = resolve(config or "dpo", overrides, recipe="dpo", four_bit=four_bit)
    console.print(f"[bold]seedloop train[/] dpo: {data} on {base} -> {out_dir}"
                  + (f" (warm start from {init_adapter}, also the reference model)" if init_adapter else ""),
                  highlight=False)
    console.print(Syntax(dump(settings), "yaml", theme="ansi_dark", background_color="default"))
    with _TrainProgress() as progress:
        metrics = train_dpo(data, base, out_dir, init_adapter=init_adapter, resume=resume, progress=progress.update,
                            **settings)
    _train_summary(metrics, out_dir)


class _TrainProgress:
    """train()'s events on the shared progress bars: one "training" bar, the latest loss after the count."""

    def __enter__(self):
        self.bars = StepProgress(remaining=True, note=True).__enter__()
        self.eval_text = ""
        return self

    def update(self, event: dict) -> None:
        kind = event["event"]
        if kind == "note":
            console.print(f"[yellow]note:[/] {event['text']}", highlight=False)
        elif kind == "start":
            dropped = {k: v for k, v in event.items() if k not in ("event", "total", "step", "train_examples",
                                                                   "eval_examples") and v}
            console.print(f"{event['train_examples']} training and {event['eval_examples']} held-out examples"
                          + (f"; skipped {dropped}" if dropped else ""), highlight=False)
            self.bars("training", event["step"], event["total"], note="")
        elif kind == "eval":
            self.eval_text = f"eval {event['eval_loss']:.4f}"
            if "training" in self.bars:
                self.bars("training", note=self.eval_text)
        elif kind == "step" and "training" in self.bars:
            self.bars("training", event["step"], note=f"loss {event['loss']:.4f}  {self.eval_text}")

    def __exit__(self, *exc):
        self.bars.__exit__(*exc)


def _train_summary(metrics: dict, out_dir: Path) -> None:
    table = Table(title=f"trained -> {out_dir}", show_header=False)
    for key in ("objective", "task", "labels", "steps", "train_pairs", "eval_pairs", "eval_margin_before",
                "eval_margin_after", "eval_pair_accuracy_before", "eval_pair_accuracy_after", "stopped_early",
                "train_loss", "initial_eval_loss", "final_eval_loss", "best_eval_loss", "best_step",
                "tokens_per_second", "peak_rss_mb", "peak_gpu_mb", "model_footprint_mb", "trainable_params",
                "chat_template", "seconds"):
        if metrics.get(key) is not None:
            value = metrics[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) and key.endswith("loss") else str(value))
    for reason, count in (metrics.get("data", {}).get("counts") or {}).items():
        if count:
            table.add_row(f"records {reason.replace('_', ' ')}", str(count))
    console.print(table)


@handle_errors
def evaluate(
    model: str = typer.Option(..., "--model", help="A `seedloop train` output folder, a merged/plain model "
                              "folder, or 'local'."),
    data: Path = typer.Option(..., "--data", help="Record table with reference outputs."),
    labels: str = typer.Option(None, "--labels", help="The label set: comma-separated, or a .json list / "
                               ".txt file (default: detected when outputs are few distinct short strings)."),
    metrics_out: Path = typer.Option(None, "--out", help="Also write the metrics here (.json)."),
    predictions: Path = typer.Option(None, "--predictions", help="Write each record's answer here (.parquet/.jsonl)."),
    max_new_tokens: int = typer.Option(None, min=1, help="Longest answer to generate (default: longest reference "
                                       "+ 8)."),
    batch_size: int = typer.Option(16, min=1, help="Prompts per forward pass."),
    score_labels: bool = typer.Option(True, "--score-labels/--no-score-labels",
                                      help="Also pick the most likely label by log-probability."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on stdout "
                                 "(and nothing else there; progress stays on stderr)."),
) -> None:
    """Loss, and accuracy (labels from a known set) or exact match and ROUGE-L, of a trained model."""
    quiet_libraries()
    from train.evaluation import evaluate as run_evaluation

    label_list = parse_labels(labels)
    with StepProgress() as bars:
        metrics = run_evaluation(model, data, labels=label_list, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 score_labels=score_labels, predictions=predictions,
                                 progress=bars.counter("answering", None))
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        table = Table(title=f"{model} on {data}", show_header=False)
        for key, value in metrics.items():
            if not isinstance(value, dict) and value is not None:
                table.add_row(key, str(value))
        out.print(table)
    if metrics_out:
        write_text(metrics_out, json.dumps(metrics, indent=1))


@handle_errors
def predict(
    model: str = typer.Option(..., "--model", help="A `seedloop train` output folder (classifier or generator), a "
                              "merged/plain model folder, or 'local'."),
    data: Path = typer.Option(..., "--data", help="Record table to predict (.parquet/.jsonl); outputs are ignored."),
    out_path: Path = typer.Option(..., "--out", help="Predictions (.parquet/.jsonl): id, instruction, input, then "
                                  "label + probability (classifier) or text + mean_logprob + tokens (generator)."),
    batch_size: int = typer.Option(16, min=1, help="Rows per forward pass."),
    max_new_tokens: int = typer.Option(64, min=1, help="Longest answer a generator writes."),
) -> None:
    """Predict every row of a table with a trained specialist; a killed run re-run resumes by record id."""
    quiet_libraries()
    from train.predict import predict as run_predict

    with StepProgress(remaining=True) as bars:
        summary = run_predict(model, data, out_path, batch_size=batch_size, max_new_tokens=max_new_tokens,
                              progress=bars.counter("predicting", None))
    resumed = f" ({summary['resumed']} from an earlier run)" if summary["resumed"] else ""
    console.print(f"{summary['task']}: {summary['rows']} rows{resumed} -> {out_path}", highlight=False)


@handle_errors
def serve(
    model: str = typer.Option(..., "--model", help="A `seedloop train` output folder (classifier or generator), a "
                              "merged/plain model folder, or 'local'."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    name: str = typer.Option(None, help="The model id clients ask for (default: the folder's name)."),
) -> None:
    """Serve a specialist behind an OpenAI-compatible API: /v1/chat/completions and /v1/models."""
    quiet_libraries()
    import uvicorn

    from train.serve import make_app

    app = make_app(model, name=name)
    console.print(f"serving '{app.state.model_id}' at http://{host}:{port}/v1 (OpenAI-compatible; Ctrl-C stops)",
                  highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@handle_errors
def export(
    adapter: Path = typer.Argument(..., help="A `seedloop train` output folder."),
    out_dir: Path = typer.Option(..., "--out", help="Where to write the export (a folder; a .gguf file with --gguf)."),
    merge: bool = typer.Option(False, "--merge", help="Merge the adapter into a full copy of the base for serving."),
    dtype: str = typer.Option("bf16", help="Merged weights: bf16 or fp32 (never the 4-bit training weights)."),
    gguf: bool = typer.Option(False, "--gguf", help="Merge and write one GGUF file for llama.cpp / Ollama, with an "
                              "Ollama Modelfile beside it (generators on a Llama base with SmolLM2's tokenizer)."),
    quant: str = typer.Option("f16", help="GGUF weights: f32, f16 or q8_0."),
) -> None:
    """Export an adapter: the adapter alone (with tokenizer and config), --merge'd into its base, or --gguf."""
    quiet_libraries()
    from train.export import copy_adapter, merge_adapter

    if gguf:
        from train.gguf_export import export_gguf

        export_gguf(adapter, out_dir, quant=quant)
        console.print(f"wrote {adapter} merged as {quant} GGUF -> {out_dir} (and {out_dir.with_name('Modelfile')})",
                      highlight=False)
    elif merge:
        merge_adapter(adapter, out_dir, dtype=dtype)
        console.print(f"merged {adapter} into a {dtype} copy of its base -> {out_dir}", highlight=False)
    else:
        copy_adapter(adapter, out_dir)
        console.print(f"copied the adapter in {adapter} -> {out_dir}", highlight=False)
