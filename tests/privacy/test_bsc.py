"""The binary-output channel of a PACZero-MI bit, against a 60-digit mpmath evaluation of its defining formula."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from paczero.privacy.bsc import FLIP_GRID, bsc_mi, flip_for_mi, flip_of_sigma, on_grid, sigma_of_flip
from paczero.privacy.channel import binary_entropy, channel_mi, sigma_for_mi

mp.mp.dps = 60


def _oracle(q: float, flip: float) -> mp.mpf:
    """I = H_b(q(1 − f) + (1 − q)f) − H_b(f) in nats, in 60-digit arithmetic (the issue's formula, literally)."""
    q, f = mp.mpf(q), mp.mpf(flip)

    def h(x):
        return mp.mpf(0) if x in (0, 1) else -x * mp.log(x) - (1 - x) * mp.log(1 - x)

    return h(q * (1 - f) + (1 - q) * f) - h(f)


Q_GRID = [1e-6, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4, 1 - 1e-6]


def _betas(q: float) -> list[float]:
    top = 0.999 * binary_entropy(q)
    return [b for b in np.geomspace(1e-9, top, 12)] if top > 1e-9 else []


@pytest.mark.parametrize("q", Q_GRID)
@pytest.mark.parametrize("flip", [0.0, 1e-15, 1e-6, 0.01, 0.1, 0.3, 0.49, 0.5 - 1e-6, 0.5 - 1e-9, 0.5])
def test_mi_matches_the_defining_formula(q, flip):
    exact = _oracle(q, flip)
    got = bsc_mi(q=q, flip=flip)
    if exact == 0:
        assert got == 0.0
    else:
        assert abs(got - exact) <= 2e-14 * exact


@settings(max_examples=300, deadline=None, derandomize=True)
@given(q=st.floats(1e-6, 1 - 1e-6), flip=st.floats(0.0, 0.5))
def test_mi_matches_the_formula_anywhere(q, flip):
    exact = _oracle(q, flip)
    assert abs(bsc_mi(q=q, flip=flip) - exact) <= 2e-14 * exact + 1e-300


@pytest.mark.parametrize("q", Q_GRID)
def test_calibration_lands_in_the_conservative_band_on_the_issue_grid(q):
    """β(1 − 1e-6) ≤ I(q₊, flip) ≤ β by the 60-digit oracle, on q₊ ∈ [1e-6, 1 − 1e-6], β ∈ [1e-9, 0.999·H_b(q₊)]."""
    for beta in _betas(q):
        flip = flip_for_mi(q=q, beta=beta)
        exact = _oracle(q, flip)
        assert beta * (1 - 1e-6) <= exact <= beta, (q, beta, flip)
        assert flip * FLIP_GRID == math.floor(flip * FLIP_GRID)  # a 64-bit word realises it exactly


@settings(max_examples=200, deadline=None, derandomize=True)
@given(q=st.floats(1e-6, 1 - 1e-6), log_fraction=st.floats(-20.0, 0.0))
def test_calibration_is_conservative_anywhere(q, log_fraction):
    beta = 0.999 * binary_entropy(q) * math.exp(log_fraction)
    if beta < 1e-9:
        return
    flip = flip_for_mi(q=q, beta=beta)
    assert beta * (1 - 1e-6) <= _oracle(q, flip) <= beta


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0, 30.0])
def test_the_bit_never_carries_more_than_the_real_release(q, sigma):
    """Data processing: the bit sign(s + σξ) is a function of s + σξ, so I_bsc(q, Φ(−1/σ)) ≤ I_awgn(q, σ)."""
    assert bsc_mi(q=q, flip=float(norm.cdf(-1 / sigma))) < channel_mi(q=q, sigma=sigma)


@pytest.mark.parametrize("beta", [1e-3, 0.01, 0.1])
def test_at_the_same_budget_the_binary_channel_allows_less_noise(beta):
    """Calibrated on the bit's own channel, σ is smaller and more bits carry the true sign (measurements.md:
    P(true sign) 0.5565 → 0.5706 at β = 0.01 and 0.681 → 0.720 at β = 0.1, q₊ = 1/2)."""
    bsc = flip_for_mi(q=0.5, beta=beta)
    awgn = flip_of_sigma(sigma_for_mi(q=0.5, beta=beta))
    assert sigma_of_flip(bsc) < 0.85 * sigma_for_mi(q=0.5, beta=beta)
    assert 1 - bsc > 1 - awgn
    if beta == 0.01:
        assert (1 - awgn, 1 - bsc) == (pytest.approx(0.5565, abs=1e-4), pytest.approx(0.5706, abs=1e-4))
    if beta == 0.1:
        assert (1 - awgn, 1 - bsc) == (pytest.approx(0.6811, abs=1e-4), pytest.approx(0.7198, abs=1e-4))


def test_mi_is_symmetric_in_the_prior_and_decreasing_in_the_flip():
    flips = np.linspace(0, 0.5, 101)
    for q in (0.2, 0.5):
        values = [bsc_mi(q=q, flip=f) for f in flips]
        assert all(a >= b for a, b in zip(values, values[1:]))
        assert values[0] == pytest.approx(binary_entropy(q), rel=1e-15) and values[-1] == 0.0
        assert bsc_mi(q=q, flip=0.2) == pytest.approx(bsc_mi(q=1 - q, flip=0.2), rel=1e-14)


def test_tiny_budgets_give_a_fair_coin():
    assert flip_for_mi(q=0.5, beta=1e-16) == 0.5


def test_on_grid_rounds_up_to_a_multiple_of_two_to_the_minus_64():
    for f in (1e-30, 3e-20, 0.1, 0.3, 0.5):
        g = on_grid(f)
        assert g >= f and g * FLIP_GRID == math.floor(g * FLIP_GRID) and g - f < 2.0**-64
    assert on_grid(0.3) == 0.3  # above 2⁻¹², a float is already on the grid


def test_flip_of_sigma_is_the_gaussian_tail_rounded_up():
    for sigma in (0.1, 1.0, 10.0):
        assert 0 <= flip_of_sigma(sigma) - norm.cdf(-1 / sigma) < 2.0**-64
    for sigma in (1.0, 10.0):  # far from the grid's resolution the round trip is exact to rounding
        assert sigma_of_flip(flip_of_sigma(sigma)) == pytest.approx(sigma, rel=1e-12)
    assert sigma_of_flip(0.5) == math.inf and sigma_of_flip(0.0) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"q": 0.0, "beta": 0.1}, "q=0.0"),
    ({"q": 1.0, "beta": 0.1}, "q=1.0"),
    ({"q": 0.5, "beta": 0.0}, "beta=0.0"),
    ({"q": 0.5, "beta": 0.7}, "beta=0.7"),
])
def test_calibration_refuses_what_needs_no_noise_or_cannot_be_met(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flip_for_mi(**kwargs)


@pytest.mark.parametrize("kwargs, match", [({"q": -0.1, "flip": 0.2}, "q=-0.1"), ({"q": 0.5, "flip": 0.6}, "flip=0.6")])
def test_mi_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bsc_mi(**kwargs)
