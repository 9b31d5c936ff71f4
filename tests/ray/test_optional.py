"""Ray is an optional extra: the local path never imports it, a missing install names the command
that fixes it, and bad executor options fail before any work. No cluster needed."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from seedloop.core.errors import ConfigError
from tests.conftest import EXAMPLE_SEEDS, run_cli


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_local_path_never_imports_ray():
    res = _python("import sys\n"
                  "import seedloop.cli, synth.generate, curate.pipeline, active_learning.pool\n"
                  "import seedloop.executors.ray_generate, seedloop.executors.ray_data\n"
                  "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_missing_ray_names_the_install_command(tmp_path):
    # sys.modules['ray'] = None makes `import ray` fail as it does where the extra is not installed
    res = _python("import sys; sys.modules['ray'] = None\n"
                  "from seedloop.cli import main\n"
                  f"sys.argv = ['seedloop', 'generate', '--seeds', {str(EXAMPLE_SEEDS)!r}, '--out', "
                  f"{str(tmp_path / 'o.parquet')!r}, '--executor', 'ray']\n"
                  "main()")
    assert res.returncode == 2, res.stderr
    assert "pip install 'seedloop[ray]'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("args,message", [
    (["--executor", "dask"], "--executor must be one of local, ray, got 'dask'"),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address 127.0.0.1:6379 needs --executor ray"),
])
def test_bad_executor_options(tmp_path, args, message):
    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--out", tmp_path / "o.parquet", *args)
    assert res.returncode == 2 and message in res.stderr


def test_secret_never_shows_but_survives_pickling():
    from seedloop.executors.ray_generate import Secret, TeacherRecipe

    recipe = TeacherRecipe("openai:x", "http://127.0.0.1:1/v1", Secret("sk-live-abc"))
    shown = f"{recipe!r} {recipe} {recipe.key} {[recipe.key]}"
    assert "sk-live-abc" not in shown and "***" in shown
    assert pickle.loads(pickle.dumps(recipe)).key.reveal() == "sk-live-abc"


def test_disagreement_is_refused_on_ray():
    from seedloop.executors.ray_data import score_pool_on_ray

    with pytest.raises(ConfigError, match="use --executor local"):
        score_pool_on_ray("unused", [{"instruction": "x"}], "disagreement")
