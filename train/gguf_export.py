"""Export a generator as one GGUF file, for llama.cpp and Ollama, with an Ollama `Modelfile` beside it.

The adapter is merged into a full-precision copy of its base, then written with the `gguf` package:
its tensor-name map (Hugging Face names -> GGUF names), its `SpecialVocab` (merges, special tokens,
chat template) and its quantizer (q8_0). What this module adds is what llama.cpp's
convert_hf_to_gguf.py does for a Llama model: the hyperparameters, the vocabulary with token types,
and the rotary permutation of the query and key weights that llama.cpp's kernels expect.

Scope: Llama-architecture bases (LlamaForCausalLM: SmolLM2, the packaged student, and tiny test
models) with SmolLM2's tokenizer, whose pre-tokenizer llama.cpp knows as "smollm". For anything else,
`export --merge` and run llama.cpp's own convert_hf_to_gguf.py on the merged folder.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np

from seedloop.core.atomic import atomic_path, write_text
from seedloop.core.errors import InputError

QUANTS = ("f32", "f16", "q8_0")
CHATML_TEMPLATE = ('{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
                   '{{- range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
                   '{{ end }}{{ end }}<|im_start|>assistant\n')
# a jinja template's default system turn (its newline written as \n or as a newline)
DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\\n|\n)(.+?)<\|im_end\|>")


def export_gguf(model_dir: str | Path, out: str | Path, *, quant: str = "f16") -> Path:
    """Write `out` (a .gguf file) and `Modelfile` beside it, atomically. Returns the GGUF's path."""
    import gguf

    from train.classifier_model import is_classifier
    from train.inference import load_for_inference

    out = Path(out)
    if quant not in QUANTS:
        raise InputError(f"--quant should be one of {', '.join(QUANTS)}, found {quant!r}", field="quant")
    if is_classifier(model_dir):
        raise InputError("GGUF export is for generators; a classifier exports with --merge", file=str(model_dir))
    model, tokenizer = load_for_inference(model_dir, four_bit=False, dtype="fp32")
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    config = model.config
    if (config.architectures or [None])[0] != "LlamaForCausalLM":
        raise InputError(f"GGUF export supports Llama models; this is {config.architectures}: export --merge and "
                         "use llama.cpp's convert_hf_to_gguf.py", file=str(model_dir))
    _check_tokenizer(tokenizer, model_dir)
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        _add_hparams(writer, config, quant, out.stem)
        _add_vocab(writer, tokenizer, config.vocab_size)
        _add_tensors(writer, model, config, quant)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    write_text(out.with_name("Modelfile"), modelfile(out.name, tokenizer.chat_template or ""))
    return out


def _check_tokenizer(tokenizer, model_dir) -> None:
    from train.models import packaged_student

    ours = json.loads(tokenizer.backend_tokenizer.to_str()) if tokenizer.is_fast else {}
    known = json.loads((packaged_student() / "tokenizer.json").read_text())
    if ours.get("model", {}).get("type") != "BPE" or ours.get("pre_tokenizer") != known.get("pre_tokenizer"):
        raise InputError("GGUF export knows SmolLM2's tokenizer only (llama.cpp pre-tokenizer 'smollm'); "
                         "export --merge and use llama.cpp's convert_hf_to_gguf.py", file=str(model_dir))


def _add_hparams(writer, config, quant: str, name: str) -> None:
    import gguf

    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_vocab(writer, tokenizer, vocab_size: int) -> None:
    """The vocabulary as convert_hf_to_gguf.py writes a GPT-2-style BPE one, then the gguf package's
    SpecialVocab for merges, special token ids and the chat template."""
    import gguf

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added, decoder = tokenizer.get_added_vocab(), tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in added and decoder[i].special
                         else gguf.TokenType.USER_DEFINED if token in added else gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as folder:      # SpecialVocab reads the tokenizer's files
        tokenizer.save_pretrained(folder)
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    special.chat_template = tokenizer.chat_template or special.chat_template
    special.add_to_gguf(writer)


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face's rotary layout (halves) -> llama.cpp's (interleaved pairs), per head."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _add_tensors(writer, model, config, quant: str) -> None:
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue                        # llama.cpp reuses the token embeddings
        data = tensor.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise InputError(f"no GGUF name for the tensor {name!r}")
        if data.ndim == 1 or quant == "f32":
            writer.add_tensor(new_name, data.astype(np.float32))
        elif quant == "f16" or data.shape[-1] % 32:
            writer.add_tensor(new_name, data.astype(np.float16))
        else:
            qtype = gguf.GGMLQuantizationType.Q8_0
            packed = gguf.quants.quantize(data, qtype)
            writer.add_tensor(new_name, packed, raw_dtype=qtype)   # the writer reads the shape from the bytes


def modelfile(gguf_name: str, chat_template: str) -> str:
    """An Ollama Modelfile for the GGUF beside it: ChatML templates get Ollama's (Go) form of it."""
    lines = [f"FROM ./{gguf_name}", ""]
    if "<|im_start|>" in chat_template:
        lines += [f'TEMPLATE """{CHATML_TEMPLATE}"""', 'PARAMETER stop "<|im_end|>"', 'PARAMETER temperature 0']
        system = DEFAULT_SYSTEM.search(chat_template)
        if system:
            lines.append(f'SYSTEM """{system.group(1)}"""')
    else:
        lines.append("# the chat template is in the GGUF (tokenizer.chat_template); write TEMPLATE for Ollama here")
    return "\n".join(lines) + "\n"
