"""The child process behind `LlamaCppTeacher`: one GGUF model in llama-cpp-python, answering requests
that come over a pipe. Started by synth/teachers/local.py as

    python -m synth.teachers.llama_worker FD

where FD is this process's end of a `multiprocessing.Pipe`. The first message is the model's
settings (a dict of `Llama` keyword arguments); the worker answers ("ok", None) once the model is
loaded. Then each message is a ChatRequest, answered ("ok", Completion) or ("raise", exception).
None, or the parent's end closing, ends the worker.

Why a process: a native fault in llama.cpp (SIGILL from AMX kernels, SIGSEGV) kills this process
only, and the parent reports it with the signal instead of dying silently.

subtle: the model is created and every call runs on this process's main thread, because llama.cpp's
OpenMP team belongs to the thread that first runs it (see local.py).

Not handled: several requests at once (the parent sends one at a time), or streaming.
"""

from __future__ import annotations

import pickle
import signal
import sys
import traceback
from multiprocessing.connection import Connection

from seedloop.core.errors import ConfigError, SeedloopError
from synth.teachers.base import ChatRequest, Completion


class LlamaModel:
    """The model and the two ways of calling it: chat, or the raw template when there is a prefill."""

    def __init__(self, model_path: str, **settings):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError(f"the local teacher needs llama-cpp-python ({exc}): pip install llama-cpp-python") from None
        self.path = model_path
        try:
            self.llm = Llama(model_path=model_path, verbose=False, **settings)
        except ValueError as exc:   # llama-cpp-python's word for a file it cannot load
            raise ConfigError(f"llama.cpp cannot load {model_path}: {exc}") from None
        self._formatter = None

    def complete(self, request: ChatRequest) -> Completion:
        params = dict(max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
                      seed=request.seed)
        if request.json_schema:
            params["grammar"] = _grammar(request.json_schema)
        if request.prefill:
            prompt, stop = self._format(request)
            out = self.llm.create_completion(prompt, stop=stop + list(request.stop), **params)
            text = out["choices"][0]["text"]
        else:
            out = self.llm.create_chat_completion(messages=request.message_dicts(),
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
            llm = self.llm
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


def _grammar(json_schema: str):
    """A grammar from the schema: llama.cpp then samples only tokens it allows, so the answer is valid
    JSON of that schema unless max_tokens cuts it."""
    from llama_cpp import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(json_schema, verbose=False)
    except Exception as exc:  # noqa: BLE001 - the converter raises plain errors for schemas it cannot express
        raise ConfigError(f"llama.cpp cannot make a grammar of the JSON Schema: {type(exc).__name__}: {exc}") from None


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling (ours do), else a RuntimeError with its type and message."""
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception type may fail to pickle
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def serve(conn: Connection) -> int:
    try:
        model = LlamaModel(**conn.recv())
        conn.send(("ok", None))
    except EOFError:
        return 0
    except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it
        conn.send(("raise", portable(exc)))
        return 1
    while True:
        try:
            request = conn.recv()
        except EOFError:   # the parent closed its end, or died
            return 0
        if request is None:
            return 0
        try:
            reply = ("ok", model.complete(request))
        except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it
            if not isinstance(exc, SeedloopError):   # a bug: keep its traceback somewhere a user sees it
                traceback.print_exc()
            reply = ("raise", portable(exc))
        try:
            conn.send(reply)
        except OSError:   # the parent is gone; nobody waits for this answer
            return 0


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group; the parent decides when this worker stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return serve(Connection(int(argv[1])))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
