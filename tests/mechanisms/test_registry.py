"""The one list of mechanisms: families partition the names, each statement's family is its spec's, and each
mechanism releases only the kinds its spec declares."""

from __future__ import annotations

import numpy as np
import pytest

from paczero.mechanisms import registry
from paczero.mechanisms.base import Mechanism
from paczero.mechanisms.registry import NAMES, REGISTRY, build_mechanism, names, run_statement, spec
from paczero.secret import SecretState
from paczero.subsets import membership_matrix

FAMILIES = ("pac", "dp", "none")
SETTINGS = {"mi": ["privacy.budget=0.5"], "dpzero": ["privacy.epsilon=2", "zo.directions=1"],
            "dpaggzo": ["privacy.epsilon=2"],
            "dpsgd": ["privacy.epsilon=2", "model.tuning=set", "model.trainable.head_rows=true"]}


@pytest.fixture(autouse=True)
def quick_dp_calibration(monkeypatch):
    """A fixed noise multiplier for the DP baselines: the calibration (seconds of root solving, tested in
    tests/privacy/test_accounting.py) is not what these tests are about."""
    monkeypatch.setattr(registry, "dp_noise_multiplier", lambda cfg: 5.0)


def _config(tiny_config, name: str):
    return tiny_config(f"privacy.mechanism={name}", *SETTINGS.get(name, ["zo.directions=3"]))


def test_the_families_partition_the_names():
    parts = [names(family=f) for f in FAMILIES]
    assert sorted(n for part in parts for n in part) == sorted(NAMES) == sorted(names())
    assert len(set(NAMES)) == len(NAMES)
    assert {"zpl", "mi"} <= set(names(family="pac")) and {"dpzero", "dpaggzo"} <= set(names(family="dp"))
    assert "mezo" in names(family="none")


def test_a_spec_is_found_by_its_own_name_and_an_unknown_name_is_refused():
    assert all(spec(n).name == n and REGISTRY[n] is spec(n) for n in NAMES)
    with pytest.raises(ValueError, match=r"mechanism 'zpl2' is unknown; expected one of zpl, mi"):
        spec("zpl2")


def test_a_mechanism_on_the_secret_subset_needs_the_subsets():
    for s in REGISTRY.values():
        assert not s.trains_on_secret_subset or s.uses_subsets, s.name
        assert (s.build is None) == s.first_order == (s.releases == ()), s.name


@pytest.mark.parametrize("name", NAMES)
def test_the_statement_has_the_family_of_its_spec(tiny_config, name):
    cfg = _config(tiny_config, name)
    statement = run_statement(cfg, steps=cfg.train.steps, releases=cfg.train.steps * cfg.zo.directions)
    assert statement.mechanism == name and statement.family == spec(name).family
    assert statement.private == (spec(name).family != "none")
    assert statement.steps == cfg.train.steps
    if statement.private:
        assert statement.mia_posterior_bound < 1.0
    else:
        assert statement.mia_posterior_bound == 1.0


@pytest.mark.parametrize("name", NAMES)
def test_a_mechanism_releases_only_the_kinds_its_spec_declares(tiny_config, name):
    cfg = _config(tiny_config, name)
    s = spec(name)
    n, m, K = cfg.data.n_pool, cfg.privacy.n_subsets, cfg.zo.directions
    membership = membership_matrix(n=n, m=m, seed=cfg.run.seed) if s.uses_subsets else None
    mechanism = build_mechanism(cfg, membership=membership, secret=SecretState.fresh(m))
    if s.build is None:
        assert mechanism is None
        return
    assert isinstance(mechanism, Mechanism)
    rng = np.random.default_rng(0)
    kinds = set()
    for step, g in enumerate([rng.normal(size=(n, K)), np.abs(rng.normal(size=(n, K))) + 1.0,
                              rng.normal(size=(n, K)) + 0.1]):
        chosen = mechanism.sample(step=step, n=n)
        releases = mechanism.release_step(g if chosen is None else g[chosen], step=step)
        assert len(releases) == K
        assert all(np.isfinite(r.value) for r in releases)
        kinds |= {type(r) for r in releases}
    assert kinds <= set(s.releases)
