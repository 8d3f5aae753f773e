"""DP accounting through Opacus: golden numbers, closed forms, and the σ ↔ ε round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from paczero.privacy.accounting import RDP_ORDERS, dp_epsilon, noise_multiplier


def test_rdp_golden_number():
    # Opacus' own test value (ecosystem-notes §5): σ = 1.5, q = 0.04, 2250 steps, δ = 1e-5 → ε = 7.3291.
    assert dp_epsilon(noise_multiplier=1.5, sample_rate=0.04, steps=2250, delta=1e-5) == pytest.approx(7.3291,
                                                                                                        abs=1e-4)


def _analytic_gaussian_delta(eps: float, sigma: float) -> float:
    """Balle & Wang (2018), Thm 8: the exact δ(ε) of one Gaussian release with sensitivity 1 and std σ."""
    return norm.cdf(-eps * sigma + 0.5 / sigma) - math.exp(eps) * norm.cdf(-eps * sigma - 0.5 / sigma)


def test_rdp_golden_point_without_sampling():
    # dp-accounting's exact point (ecosystem-notes §2): σ = 4.530877117, q = 1, one step → (1, 1e-6) by RDP.
    assert dp_epsilon(noise_multiplier=4.530877117, sample_rate=1.0, steps=1, delta=1e-6) == pytest.approx(
        1.0, abs=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 4.530877117])
def test_prv_matches_the_exact_gaussian_mechanism(sigma):
    """One unsampled release: PRV is within its error bound (0.01) of the exact ε, which RDP only bounds."""
    exact = brentq(lambda e: _analytic_gaussian_delta(e, sigma) - 1e-6, 0.0, 50.0, xtol=1e-12)
    prv = dp_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1, delta=1e-6, accountant="prv")
    rdp = dp_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1, delta=1e-6)
    assert prv == pytest.approx(exact, abs=0.011)
    assert rdp > exact


@pytest.mark.parametrize("sigma, steps", [(0.8, 1), (2.0, 10), (5.0, 300)])
def test_rdp_without_sampling_is_the_gaussian_closed_form(sigma, steps):
    """q = 1: RDP of T Gaussian releases is Tα/(2σ²); converted to (ε, δ) by Balle et al. (2020), Thm 21."""
    delta = 1e-5
    a = np.array(RDP_ORDERS, dtype=np.float64)
    rdp = steps * a / (2 * sigma**2)
    expected = np.min(rdp + np.log1p(-1 / a) - (np.log(delta) + np.log(a)) / (a - 1))
    assert dp_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=delta) == pytest.approx(
        expected, rel=1e-9)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize("epsilon, q, steps", [(0.5, 0.064, 1000), (2.0, 0.064, 1000), (6.0, 0.25, 20)])
def test_noise_multiplier_gives_back_the_target_epsilon(accountant, epsilon, q, steps):
    sigma = noise_multiplier(epsilon=epsilon, delta=1e-5, sample_rate=q, steps=steps, accountant=accountant)
    achieved = dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5, accountant=accountant)
    # Opacus' bisection keeps the side below the target and stops within its tolerance (0.01).
    assert epsilon - 0.011 <= achieved <= epsilon * (1 + 1e-9)


def test_more_noise_costs_less_epsilon():
    eps = [dp_epsilon(noise_multiplier=s, sample_rate=0.05, steps=500, delta=1e-5) for s in (0.7, 1.0, 2.0, 4.0)]
    assert eps == sorted(eps, reverse=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_rate": 0.0}, "sample_rate"),
    ({"sample_rate": 1.5}, "sample_rate"),
    ({"steps": 0}, "steps"),
    ({"delta": 0.0}, "delta"),
    ({"noise_multiplier": 0.0}, "noise_multiplier"),
    ({"accountant": "gdp"}, "accountant"),
])
def test_invalid_arguments_name_the_value(kwargs, match):
    args = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 10, "delta": 1e-5, **kwargs}
    with pytest.raises(ValueError, match=match):
        dp_epsilon(**args)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.inf])
def test_impossible_targets_are_refused(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        noise_multiplier(epsilon=epsilon, delta=1e-5, sample_rate=0.1, steps=10)
