"""The one factory: a tiny config's components have the configured sizes, a membership matrix with every record in
exactly M/2 of the M subsets (paczero-notes §3.1), the mechanism only given the secret, and what ``base`` shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paczero.build import SPLITS, build, build_key, initial_weights, restore_weights
from paczero.mechanisms.zpl import ZPL
from paczero.secret import SecretState


def test_a_tiny_run_has_the_configured_parts(tiny_config):
    cfg = tiny_config("privacy.n_subsets=8")
    c = build(cfg)
    sizes = {"pool": cfg.data.n_pool, "dev": cfg.data.n_dev, "test": cfg.data.n_test}
    for name in SPLITS:
        assert len(getattr(c.split, name)) == sizes[name] and len(c.encoded[name]) == sizes[name], name
    ids = {name: {id(r) for r in getattr(c.split, name)} for name in SPLITS}
    assert not (ids["pool"] & ids["dev"]) and not (ids["pool"] & ids["test"]) and not (ids["dev"] & ids["test"])
    a = c.membership
    assert a.shape == (cfg.data.n_pool, 8) and a.dtype == bool
    assert (a.sum(axis=1) == 4).all()  # every record in exactly M/2 subsets: membership prior 1/2
    assert len({row.tobytes() for row in a}) > 1 and 0 < a.sum(axis=0).min()
    assert c.mechanism is None and c.optimizer is None


def test_the_mechanism_comes_with_the_secret_and_the_matrix_with_the_mechanism(tiny_config):
    cfg = tiny_config("privacy.n_subsets=6")
    c = build(cfg, secret=SecretState.fresh(6))
    assert isinstance(c.mechanism, ZPL) and c.mechanism.membership is c.membership
    assert c.membership.shape == (cfg.data.n_pool, 6) and (c.membership.sum(axis=1) == 3).all()
    mezo = build(tiny_config("privacy.mechanism=mezo"), secret=SecretState.fresh(6), base=c)
    assert mezo.membership is None and type(mezo.mechanism).__name__ == "MeZO"
    first = build(tiny_config("privacy.mechanism=firstorder"), secret=SecretState.fresh(6), base=c)
    assert first.mechanism is None and first.optimizer is not None


def test_the_membership_matrix_is_a_function_of_the_public_seed(tiny_config):
    c = build(tiny_config())
    again = build(tiny_config("train.lr=0.5"), base=c)
    assert again.membership is not c.membership and np.array_equal(again.membership, c.membership)
    other = build(tiny_config("run.seed=1"))
    assert other.membership.shape == c.membership.shape and not np.array_equal(other.membership, c.membership)


@pytest.mark.parametrize("change, shared", [
    ("train.lr=0.5", True), ("privacy.mechanism=mezo", True), ("train.steps=3", True), ("zo.directions=4", True),
    ("zo.clip=1.0", True), ("run.seed=1", False), ("zo.eps=0.01", False), ("data.n_pool=32", False),
])
def test_base_shares_the_model_and_records_only_when_the_key_matches(tiny_config, change, shared):
    base = build(tiny_config())
    cfg = tiny_config(change)
    assert (build_key(cfg) == build_key(base.cfg)) == shared
    c = build(cfg, base=base)
    assert (c.loaded is base.loaded and c.encoded is base.encoded and c.engine is base.engine) == shared
    assert c.cfg is cfg


def test_initial_weights_put_theta_0_back_bit_for_bit(tiny_config):
    c = build(tiny_config())
    theta0 = initial_weights(c)
    with torch.no_grad():
        for _, p in c.loaded.trainable:
            p.add_(1.0)
    assert not any(torch.equal(p, p0) for (_, p), p0 in zip(c.loaded.trainable, theta0))
    restore_weights(c, theta0)
    assert all(torch.equal(p, p0) for (_, p), p0 in zip(c.loaded.trainable, theta0))
    assert all(p.data_ptr() != p0.data_ptr() for (_, p), p0 in zip(c.loaded.trainable, theta0))
