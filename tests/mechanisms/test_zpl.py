"""PACZero-ZPL: unanimous sign or a public coin; never a function of the secret."""

from __future__ import annotations

import inspect

import numpy as np

from paczero.mechanisms.zpl import ZPL
from paczero.rng import public_coin
from paczero.subsets import membership_matrix


def test_unanimous_releases_the_common_sign():
    a = membership_matrix(n=40, m=8, seed=0)
    mech = ZPL(a, seed=0)
    for sign in (1.0, -1.0):
        r = mech.release_step(np.full((40, 1), sign * 0.3), step=0)[0]
        assert (r.value, r.kind, r.signs) == (sign, "unanimous", ("+" if sign > 0 else "-") * 8)


def test_disagreement_releases_the_public_coin():
    a = membership_matrix(n=40, m=8, seed=0)
    mech = ZPL(a, seed=5)
    g = np.where(a[:, 0], 1.0, -1.0)  # subset 0 positive, its complement-heavy subsets negative
    coins = []
    for step in range(400):
        r = mech.release_step(g[:, None], step=step)[0]
        assert r.kind == "coin" and r.value == public_coin(5, step, 0)
        coins.append(r.value)
    assert abs(np.mean(coins)) < 0.15  # fair: mean of 400 ±1 coins has sd 0.05


def test_skip_releases_nothing_on_disagreement_and_the_sign_on_agreement():
    a = membership_matrix(n=40, m=8, seed=0)
    mech = ZPL(a, seed=5, disagreement="skip")
    split = mech.release_step(np.where(a[:, 0], 1.0, -1.0)[:, None], step=3)[0]
    assert (split.value, split.kind) == (0.0, "abstain")
    agreed = mech.release_step(np.full((40, 1), -0.2), step=3)[0]
    assert (agreed.value, agreed.kind) == (-1.0, "unanimous")


def test_zpl_never_receives_the_secret():
    assert "secret" not in inspect.signature(ZPL).parameters


def test_recorded_signs_are_the_subset_mean_signs():
    rng = np.random.default_rng(3)
    a = membership_matrix(n=40, m=8, seed=1)
    g = rng.normal(size=40)
    r = ZPL(a, seed=0).release_step(g[:, None], step=0)[0]
    # Oracle: the sign of each subset's plain mean, written directly from the definition.
    expected = "".join("+" if g[a[:, j]].mean() >= 0 else "-" for j in range(8))
    assert r.signs == expected
