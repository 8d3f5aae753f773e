"""The mechanism-decomposition ablations, each against its definition written out."""

from __future__ import annotations

import numpy as np
import pytest

from paczero.mechanisms.ablations import Ablation
from paczero.rng import public_coin
from paczero.secret import SecretState
from paczero.subsets import membership_matrix


@pytest.fixture
def setup():
    rng = np.random.default_rng(1)
    a = membership_matrix(n=30, m=6, seed=2)
    g = rng.normal(scale=2.0, size=(30, 1))
    return a, g, SecretState(key=bytes(32), j_star=4)


def _release(variant, a, g, secret, clip=1.5, step=3):
    return Ablation(variant, membership=a, secret=secret, seed=7, clip=clip).release_step(g, step=step)[0]


def test_each_variant_matches_its_definition(setup):
    a, g, secret = setup
    clipped = np.clip(g[:, 0], -1.5, 1.5)
    members = [i for i in range(30) if a[i, 4]]
    half = sum(clipped[i] for i in members) / len(members)
    full = sum(clipped) / 30
    assert _release("raw_full", a, g, secret).value == pytest.approx(full, rel=1e-12)
    assert _release("quant_full", a, g, secret).value == (1.0 if full >= 0 else -1.0)
    assert _release("raw_half", a, g, secret).value == pytest.approx(half, rel=1e-12)
    assert _release("quant_half", a, g, secret).value == (1.0 if half >= 0 else -1.0)
    assert _release("random_sign", a, g, secret).value == public_coin(7, 3, 0)


def test_random_sign_ignores_the_data(setup):
    a, g, secret = setup
    assert _release("random_sign", a, g, secret).value == _release("random_sign", a, -g, secret).value


def test_unknown_ablation_is_refused(setup):
    a, _, secret = setup
    with pytest.raises(ValueError, match="ablation"):
        Ablation("half_raw", membership=a, secret=secret, seed=0)
