"""Config: YAML + dotted overrides against the schema; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from paczero.config import Config, config_from_dict, load_config
from paczero.errors import PaczeroError

_ALL = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
CONFIGS = [p for p in _ALL if p.parent.name != "compare"]
COMPARE_CONFIGS = [p for p in _ALL if p.parent.name == "compare"]


def test_overrides_apply():
    cfg = load_config(None, ["train.steps=50", "data.n_pool=128", "model.lora.target_modules=[q_proj]"])
    assert cfg.train.steps == 50 and cfg.data.n_pool == 128 and cfg.model.lora.target_modules == ["q_proj"]


@pytest.mark.parametrize("override, key", [
    ("train.stepz=3", "train.stepz"),
    ("train.steps=abc", "train.steps"),
    ("nosuch.key=1", "nosuch"),
    ("privacy.n_subsets=7", "privacy.n_subsets"),
    ("privacy.n_subsets=0", "privacy.n_subsets"),
    ("train.steps=0", "train.steps"),
    ("train.lr=-1", "train.lr"),
    ("zo.eps=0", "zo.eps"),
    ("zo.clip=0", "zo.clip"),
    ("privacy.mechanism=dp", "privacy.mechanism"),
    ("model.dtype=float8", "model.dtype"),
    ("data.prompt=no placeholder", "data.prompt"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(PaczeroError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_mi_budget_must_be_positive():
    with pytest.raises(PaczeroError, match="privacy.budget"):
        load_config(None, ["privacy.mechanism=mi", "privacy.budget=0"])


def test_override_without_equals_is_refused():
    with pytest.raises(PaczeroError, match="key=value"):
        load_config(None, ["train.steps"])


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(PaczeroError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads_and_round_trips(path):
    cfg = load_config(path)
    assert config_from_dict(cfg.to_dict()) == cfg
    assert isinstance(cfg, Config)


@pytest.mark.parametrize("path", COMPARE_CONFIGS, ids=[p.name for p in COMPARE_CONFIGS])
def test_every_shipped_compare_config_plans_valid_runs(path, monkeypatch):
    from paczero.compare import load_compare_config, plan

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    cfg = load_compare_config(path)
    runs = plan(cfg)
    assert runs and {c.privacy.mechanism for _, c in runs} == set(cfg.mechanisms)


def test_fingerprint_ignores_cosmetics_only():
    a = load_config(None, ["run.name=a", "run.progress=false"])
    b = load_config(None, ["run.name=b"])
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != load_config(None, ["train.steps=7"]).fingerprint()


@pytest.mark.parametrize("overrides, key", [
    (["model.train_top_layers=0"], "model.train_top_layers"),
    (["model.train_top_layers=2", "model.tuning=lora"], "model.train_top_layers"),
    (["zo.cache_prefix=true"], "zo.cache_prefix"),
])
def test_performance_options_are_validated(overrides, key):
    with pytest.raises(PaczeroError, match=key.replace(".", r"\.")):
        load_config(None, overrides)


@pytest.mark.parametrize("value", ["{sentence} then {hypothesis}", "{sentence}", "Review: {sentence}\nSentiment:",
                                   "[Q] {sentence} [A]", "a: b {sentence}"])
def test_a_text_override_that_yaml_cannot_read_is_taken_as_written(value):
    """YAML cannot parse the first (yaml.parser.ParserError used to escape) and reads the next ones as a mapping
    or a list; for a text option each is the text as written."""
    assert load_config(None, [f"data.prompt={value}"]).data.prompt == value


def test_overrides_still_read_yaml():
    cfg = load_config(None, ['data.prompt="quoted {sentence}"', "data.dev_file=null", "run.name=123", "zo.eps=1e-4",
                             'data.label_words=[" no", " yes"]'])
    assert cfg.data.prompt == "quoted {sentence}" and cfg.data.dev_file is None and cfg.run.name == "123"
    assert cfg.zo.eps == 1e-4 and cfg.data.label_words == [" no", " yes"]


@pytest.mark.parametrize("override, key", [("train.steps={x", "train.steps"), ("train.steps={a: 1}", "train.steps"),
                                           ("model.lora.target_modules=[q, {v", "model.lora.target_modules")])
def test_an_unreadable_override_of_another_type_names_the_key(override, key):
    with pytest.raises(PaczeroError, match=rf"^config: {key.replace('.', '[.]')}: ") as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_a_run_config_takes_the_same_overrides(tmp_path):
    from paczero.config import load_run_config

    (tmp_path / "config.yaml").write_text(load_config(None, []).to_yaml())
    cfg = load_run_config(tmp_path, ["data.prompt={sentence} then {x}"])
    assert cfg.data.prompt == "{sentence} then {x}"
