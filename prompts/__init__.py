"""Every prompt and Label Studio config, as versioned template files.

A chat template is a YAML file: `description`, `variables` (the names it needs) and `messages`
(a list of {role, content}); `content` is Jinja2. Rendering with a variable missing raises
MissingVariable naming it. Each template's reference `name@hash` (first 8 hex digits of the
file's sha256) is recorded on every row it produced, so a change of wording is never silent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import jinja2
import jinja2.meta
import yaml

from seedloop.core.errors import SeedloopError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          trim_blocks=True, lstrip_blocks=True)


class TemplateError(SeedloopError):
    pass


class MissingVariable(TemplateError):
    def __init__(self, template: str, names: list[str]):
        self.template, self.names = template, names
        super().__init__(f"template '{template}' needs variable(s) {', '.join(names)}")


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    digest: str
    description: str
    variables: tuple[str, ...]
    messages: tuple[tuple[str, jinja2.Template], ...]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"

    def render(self, **values) -> list[dict]:
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise MissingVariable(self.name, missing)
        return [{"role": role, "content": tpl.render(**values).strip()} for role, tpl in self.messages]


def _read(name: str) -> tuple[str, str]:
    path = resources.files(__name__).joinpath(name)
    if not path.is_file():
        raise TemplateError(f"no template '{name}' in prompts/")
    text = path.read_text(encoding="utf-8")
    return text, hashlib.sha256(text.encode()).hexdigest()[:8]


@lru_cache(maxsize=None)
def load_template(name: str) -> ChatTemplate:
    """Load `prompts/<name>.yaml` and check that its declared variables are the ones it uses."""
    text, digest = _read(f"{name}.yaml")
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"template '{name}' is not valid YAML: {exc}") from None
    declared = tuple(spec.get("variables", []))
    messages, used = [], set()
    for msg in spec["messages"]:
        source = msg["content"]
        used |= jinja2.meta.find_undeclared_variables(_ENV.parse(source))
        messages.append((msg["role"], _ENV.from_string(source)))
    if used != set(declared):
        raise TemplateError(f"template '{name}': declared variables {sorted(declared)} but uses {sorted(used)}")
    return ChatTemplate(name, digest, spec.get("description", ""), declared, tuple(messages))


def load_text(name: str) -> tuple[str, str]:
    """A plain file (e.g. a Label Studio config) and its reference `name@hash`."""
    text, digest = _read(name)
    return text, f"{name}@{digest}"


def list_templates() -> list[str]:
    root = resources.files(__name__)
    out = []
    for sub in root.iterdir():
        if sub.is_dir() and not sub.name.startswith("_"):
            out += [f"{sub.name}/{p.name[:-5]}" for p in sub.iterdir() if p.name.endswith(".yaml")]
    return sorted(out)


__all__ = ["ChatTemplate", "MissingVariable", "TemplateError", "list_templates", "load_template", "load_text"]
