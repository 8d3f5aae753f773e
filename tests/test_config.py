"""Config: YAML + dotted overrides against the schema; errors name the key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from paczero.config import Config
from paczero.settings import config_from_dict, load_config
from paczero.data.registry import dev_source
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


def _bound_mi(b: float) -> float:
    """Oracle: the attacker's success p with ln 2 - H_b(p) = b, by bisection on the binary entropy in nats."""
    if b >= math.log(2):
        return 1.0
    lo, hi = 0.5, 1.0
    for _ in range(200):
        p = (lo + hi) / 2
        divergence = math.log(2) + p * math.log(p) + (1 - p) * math.log(1 - p)
        lo, hi = (p, hi) if divergence < b else (lo, p)
    return lo


@pytest.mark.parametrize("budget, refused", [(0.33, False), (0.68, False), (0.685, False), (0.6853, True),
                                             (math.log(2), True), (1.5, True)])
def test_an_mi_budget_that_promises_nothing_is_refused(budget, refused):
    """The line is at an MIA bound of 0.999: 0.68 nats (the paper's ε = 6 match, bound 0.998) runs, 0.6853 does not."""
    assert (_bound_mi(budget) >= 0.999) == refused
    overrides = ["privacy.mechanism=mi", f"privacy.budget={budget}"]
    if refused:
        with pytest.raises(PaczeroError, match=r"privacy\.budget=.* is invalid; a budget of 0\.6852 nats or more .* "
                                               r"set privacy\.allow_vacuous=true"):
            load_config(None, overrides)
        assert load_config(None, [*overrides, "privacy.allow_vacuous=true"]).privacy.budget == budget
    else:
        load_config(None, overrides)


@pytest.mark.parametrize("epsilon, delta", [(6.0, 1e-5), (6.9, 1e-5), (6.91, 1e-5), (8.0, 1e-5), (1.0, 0.9995)])
def test_a_dp_epsilon_that_promises_nothing_is_refused(epsilon, delta):
    refused = (math.exp(epsilon) + delta) / (1 + math.exp(epsilon)) >= 0.999  # the MIA bound of (ε, δ)-DP
    overrides = ["privacy.mechanism=dpzero", f"privacy.epsilon={epsilon}", f"privacy.delta={delta}"]
    if refused:
        with pytest.raises(PaczeroError, match=r"privacy\.epsilon=.* is invalid; at delta=.* or more bounds"):
            load_config(None, overrides)
        load_config(None, [*overrides, "privacy.allow_vacuous=true"])
    else:
        load_config(None, overrides)


@pytest.mark.parametrize("overrides, key, match", [
    (["data.dev_source=somewhere"], "data.dev_source", "expected one of train, separate, none"),
    (["data.dev_source=separate"], "data.dev_source", "data.task=sst2 has no separate dev split"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b",
      "data.dev_source=separate"], "data.dev_source", "needs data.dev_file"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b", "data.dev_file=c",
      "data.dev_source=train"], "data.dev_source", "data.dev_file is set: leave data.dev_source unset or separate"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b", "data.dev_source=none",
      "train.select_on=f1"], "train.select_on", "there is no dev set"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_fraction=1.0"],
     "data.test_fraction", "expected a fraction 0 < f < 1"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b",
      "data.test_fraction=0.2"], "data.test_file", "give data.test_file or data.test_fraction, not both"),
    (["data.test_fraction=0.2"], "data.test_fraction", "only data.task=jsonl and data.task=hf read it"),
])
def test_dev_and_test_options_are_checked(overrides, key, match):
    with pytest.raises(PaczeroError, match=rf"config: {key.replace('.', '[.]')}=.* is invalid; .*{match}"):
        load_config(None, overrides)


@pytest.mark.parametrize("overrides, source", [
    ([], "train"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b"], "none"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b", "data.dev_file=c"],
     "separate"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_fraction=0.5",
      "data.dev_source=train"], "train"),
])
def test_nothing_of_a_users_file_is_public_unless_asked(overrides, source):
    assert dev_source(load_config(None, overrides).data) == source


@pytest.mark.parametrize("text, where, problem", [
    ("train:\n  steps: [1,\n  lr: 2\n", ":4:", "did not find expected ',' or ']', while parsing a flow sequence "
                                               "started at line 2"),
    ("train:\n  steps: 1\n   lr: 2\n", ":3:", "mapping values are not allowed"),
    ("a: 'open\n", ":2:", "while scanning a quoted scalar"),
])
def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_line(tmp_path, text, where, problem):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(PaczeroError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}{where} not valid YAML (") and problem in message and "\n" not in message


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
    from paczero.settings import load_run_config

    (tmp_path / "config.yaml").write_text(load_config(None, []).to_yaml())
    cfg = load_run_config(tmp_path, ["data.prompt={sentence} then {x}"])
    assert cfg.data.prompt == "{sentence} then {x}"
