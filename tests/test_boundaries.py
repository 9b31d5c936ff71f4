"""The layers, checked on every import statement in the package code (not tests or benchmarks).

    seedloop.core   imports no stage and nothing above it
    stages          synth, curate, train, active_learning, prompts: import the core, and one another
                    only through a package's public names (its `__all__`); never the roof
    the roof        seedloop.cli, seedloop.loop, seedloop.executors: may import anything

Everywhere: no private name (`_x`) is imported from another module, and no class in the roof
subclasses a stage's class to override one of its private methods (executors plug in through hooks).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("synth", "curate", "train", "active_learning", "prompts")
PACKAGES = ("seedloop", *STAGES)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


FILES = package_files()


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top in STAGES:
        return "stage"
    if module == "seedloop" or module.startswith("seedloop.core"):
        return "core"
    return "roof"


def imports(path: Path, module: str):
    """(line, imported module, name or None) for every import of our own packages in a file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join([*base, target] if target else base)
            if target.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                yield node.lineno, target, alias.name


def public_names(package: str) -> set[str]:
    """A package's `__all__`, read without importing it."""
    path = FILES.get(package)
    if path is None or path.name != "__init__.py":
        return set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            value = node.value
            if isinstance(value, ast.Call):   # __all__ = sorted([...]) or sorted(_EXPORTS)
                value = value.args[0]
            if isinstance(value, (ast.List, ast.Tuple)):
                return {ast.literal_eval(e) for e in value.elts if isinstance(e, ast.Constant)} | {
                    k for e in value.elts if isinstance(e, ast.Starred) for k in _dict_keys(path, e.value.id)}
            if isinstance(value, ast.Name):
                return _dict_keys(path, value.id)
    return set()


def _dict_keys(path: Path, name: str) -> set[str]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return {ast.literal_eval(k) for k in node.value.keys}
    raise AssertionError(f"{path}: __all__ refers to {name}, which is not a dict literal")


def is_private(name: str | None) -> bool:
    return bool(name) and name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def problems_of(module: str, path: Path) -> list[str]:
    where, mine, out = f"{path.relative_to(ROOT)}", layer(module), []
    for line, target, name in imports(path, module):
        theirs, at = layer(target), f"{where}:{line}"
        shown = f"{target}.{name}" if name else target
        if mine == "core" and theirs != "core":
            out.append(f"{at}: the core imports {shown}, which is not in the core")
        if mine == "stage" and theirs == "roof":
            out.append(f"{at}: stage {module} imports {shown} from the CLI, loop or executors")
        if mine == "stage" and theirs == "stage" and target.split(".")[0] != module.split(".")[0]:
            if name is None or name not in public_names(target):
                out.append(f"{at}: {shown} is not a public name of a stage package (add it to its __all__)")
        if is_private(name) and target != module:
            out.append(f"{at}: imports the private name {shown} from another module")
    return out


@lru_cache(maxsize=None)
def private_methods(class_name: str) -> set[str]:
    """The private methods of every stage class of that name."""
    out = set()
    for module, path in FILES.items():
        if layer(module) == "stage":
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and node.name == class_name:
                    out |= {f.name for f in node.body if isinstance(f, ast.FunctionDef) and is_private(f.name)}
    return out


def overrides_of(module: str, path: Path) -> list[str]:
    """Roof methods that override a private method of the stage class they subclass."""
    if layer(module) != "roof":
        return []
    stage_names = {name for _, target, name in imports(path, module) if name and layer(target) == "stage"}
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            theirs = set().union(*[private_methods(b.id) for b in node.bases
                                   if isinstance(b, ast.Name) and b.id in stage_names])
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in theirs:
                    out.append(f"{path.relative_to(ROOT)}:{item.lineno}: {node.name} overrides the private "
                               f"method {item.name} of a stage's class; give the stage a hook instead")
    return out


def test_the_package_has_the_layers():
    assert {layer(m) for m in FILES} == {"core", "stage", "roof"}
    assert "seedloop.core.errors" in FILES and "seedloop.cli" in FILES and "curate" in FILES


def test_every_import_respects_the_layers():
    found = [p for module, path in FILES.items() for p in problems_of(module, path) + overrides_of(module, path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("source, module, expected", [
    ("from synth.teachers.base import Teacher\n", "curate.judge", "not a public name"),
    ("from seedloop.cli.common import console\n", "train.recipe", "from the CLI, loop or executors"),
    ("from curate import Embedder\n", "seedloop.core.tables", "the core imports curate.Embedder"),
    ("from seedloop.cli.train import _quiet\n", "seedloop.cli.loop", "private name"),
    ("from .inference import _decode\n", "train.eval_pass", "private name train.inference._decode"),
    ("from curate.embed import Embedder\nclass E(Embedder):\n    def _encode_here(self):\n        pass\n",
     "seedloop.executors.ray_data", "overrides the private method"),
])
def test_the_check_catches_each_kind_of_crossing(tmp_path, source, module, expected):
    path = ROOT / "tests" / "_boundary_probe.py"   # under ROOT so that messages can name it
    try:
        path.write_text(source)
        found = problems_of(module, path) + overrides_of(module, path)
    finally:
        path.unlink(missing_ok=True)
    assert any(expected in p for p in found), found


def test_allowed_imports_pass():
    assert problems_of("active_learning.batch", FILES["active_learning.batch"]) == []
    for source, module in [("from curate import k_center_greedy\n", "active_learning.batch"),
                           ("from seedloop.core.errors import InputError\n", "synth.readers"),
                           ("from curate.embed import Embedder\n", "seedloop.cli.curate")]:
        path = ROOT / "tests" / "_boundary_probe.py"
        try:
            path.write_text(source)
            assert problems_of(module, path) == [], source
        finally:
            path.unlink(missing_ok=True)


def test_no_function_outside_tests_is_longer_than_60_lines():
    """From its `def` line to its last line, docstring included (STYLE.md: short functions)."""
    folders = [d for d in ROOT.iterdir() if d.is_dir() and d.name not in ("tests", "out") and
               not d.name.startswith(".") and not d.name.endswith(".egg-info")]
    long = []
    for path in sorted(p for d in folders for p in d.rglob("*.py")):
        relative = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{relative}:{node.lineno} {node.name} is {node.end_lineno - node.lineno + 1} lines")
    assert long == [], "\n".join(long)
