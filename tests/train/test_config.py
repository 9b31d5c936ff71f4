"""Config: every shipped file resolves, bad keys and values are named, and train()'s defaults are the YAML's."""

from __future__ import annotations

import inspect

import pytest

from seedloop.core.errors import ConfigError
from train.config import defaults, parse_overrides, resolve, shipped_configs


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_resolves(name):
    recipe = name if name in ("classifier", "dpo") else "qlora"
    resolved = resolve(name, recipe=recipe)
    assert set(resolved) == set(defaults(recipe))


def test_classifier_defaults_are_what_train_classifier_uses_and_are_checked():
    assert resolve(None, ["epochs=3"], recipe="classifier")["epochs"] == 3
    with pytest.raises(ConfigError, match="max_steps"):
        resolve(None, ["max_steps=3"], recipe="classifier")


def test_shipped_configs_are_the_expected_ones():
    assert {"qlora", "lora", "smoke"} <= set(shipped_configs())


def test_train_config_defaults_are_the_default_config():
    """TrainConfig's settings are qlora.yaml's keys, in its order, with its defaults; train() takes them."""
    from train.recipe import train
    from train.recipe_config import INPUTS, TrainConfig

    settings = TrainConfig(data="d.parquet").settings()
    assert list(settings) == list(defaults()), "TrainConfig's settings and qlora.yaml's keys differ"
    for key, value in defaults().items():
        assert settings[key] == value, f"{key}: TrainConfig default {settings[key]!r} != yaml {value!r}"
    assert TrainConfig(data="d", **resolve("smoke")).settings() == resolve("smoke")
    assert list(inspect.signature(train).parameters)[:3] == list(INPUTS[:3])
    with pytest.raises(TypeError, match="lora_rank"):
        train("d.parquet", lora_rank=8)


def test_overrides_are_typed_by_yaml():
    assert resolve(None, ["lr=1e-4"])["lr"] == 1e-4
    assert parse_overrides(["lr=1.0e-4", "pack=false", "target_modules=[q_proj, v_proj]", "run_name="]) == {
        "lr": 1e-4, "pack": False, "target_modules": ["q_proj", "v_proj"], "run_name": None}


def test_layers_apply_in_order(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("lr: 0.001\nepochs: 1\n")
    resolved = resolve(user, ["epochs=2"], four_bit=False, report_to=None)
    assert (resolved["lr"], resolved["epochs"], resolved["four_bit"], resolved["report_to"]) == (0.001, 2, False, "mlflow")


def test_unknown_key_names_the_nearest_one():
    with pytest.raises(ConfigError, match="unknown key 'lora_rank'.*did you mean 'lora_r'"):
        resolve(None, ["lora_rank=8"])


@pytest.mark.parametrize("override, message", [
    ("epochs=two", "'epochs' should be a whole number"),
    ("pack=1", "'pack' should be true or false"),
    ("overlong=skip", "'overlong' should be one of drop, truncate"),
    ("eval_fraction=1.5", "'eval_fraction' should be in"),
    ("batch_size=0", "'batch_size' should be positive"),
    ("lr", "is not key=value"),
])
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve(None, [override])


def test_bad_config_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: not valid YAML"):
        resolve(bad)
    with pytest.raises(ConfigError, match="unknown config 'nope'"):
        resolve("nope")


def test_a_classifier_may_have_zero_epochs_but_not_nothing_to_train():
    assert resolve(None, recipe="classifier", epochs=0)["epochs"] == 0     # the linear probe alone
    with pytest.raises(ConfigError, match="train nothing"):
        resolve(None, recipe="classifier", epochs=0, probe_c=0)
    with pytest.raises(ConfigError, match="'epochs' should be positive"):
        resolve(None, epochs=0)                                           # a generator needs steps
    with pytest.raises(ConfigError, match="'epochs' should be 0 or more"):
        resolve(None, recipe="classifier", epochs=-1)
