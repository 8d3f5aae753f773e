"""DP accounting through dp-accounting's PLD: closed forms under both relations, Opacus' golden numbers, round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from paczero.privacy.accounting import dp_epsilon, noise_multiplier


def _analytic_gaussian_epsilon(mu: float, delta: float) -> float:
    """Balle & Wang (2018), Thm 8: the exact ε at δ of a Gaussian mechanism whose sensitivity/σ ratio is μ."""
    return brentq(lambda e: norm.cdf(-e / mu + mu / 2) - math.exp(e) * norm.cdf(-e / mu - mu / 2) - delta,
                  0.0, 200.0, xtol=1e-12)


@pytest.mark.parametrize("sigma, steps", [(4.530877117, 1), (3.0, 10), (30.0, 1000)])
@pytest.mark.parametrize("relation, shift", [("add_remove", 1.0), ("replace_one", 2.0)])
def test_without_sampling_it_is_the_exact_gaussian_mechanism(sigma, steps, relation, shift):
    """q = 1: T releases of noise σ compose to one Gaussian with μ = shift·√T/σ, where a record moves the sum by
    Δ under add/remove and by 2Δ under replace-one; the PLD is pessimistic and within 1e-6 of exact."""
    exact = _analytic_gaussian_epsilon(shift * math.sqrt(steps) / sigma, 1e-6)
    pld = dp_epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=steps, delta=1e-6, relation=relation)
    assert exact <= pld <= exact + 1e-6


def _subsampled_replace_one_epsilon(sigma: float, q: float, delta: float) -> float:
    """One Poisson-subsampled Gaussian release under replace-one, in closed form: the worst pair of output
    distributions is P = (1 − q)N(0, σ²) + qN(−1, σ²) against Q = (1 − q)N(0, σ²) + qN(+1, σ²) (a record's
    contribution moved from −Δ to +Δ, Δ = 1). P/Q decreases in x, so δ(ε) = P(X ≤ c) − e^ε·Q(X ≤ c) where
    ln P/Q = ε at c, and each side is a mixture of normal CDFs."""
    def log_ratio(x: float) -> float:
        return (np.logaddexp(math.log1p(-q), math.log(q) - (2 * x + 1) / (2 * sigma**2))
                - np.logaddexp(math.log1p(-q), math.log(q) + (2 * x - 1) / (2 * sigma**2)))

    def hockey_stick(eps: float) -> float:
        reach = 100 * sigma**2 + 100
        c = brentq(lambda x: log_ratio(x) - eps, -reach, reach, xtol=1e-14)
        p = (1 - q) * norm.cdf(c / sigma) + q * norm.cdf((c + 1) / sigma)
        return p - math.exp(eps) * ((1 - q) * norm.cdf(c / sigma) + q * norm.cdf((c - 1) / sigma))

    return brentq(lambda e: hockey_stick(e) - delta, 1e-6, 30.0, xtol=1e-12)


@pytest.mark.parametrize("sigma, q", [(1.0, 0.064), (0.7, 0.25), (2.0, 0.5)])
def test_one_subsampled_release_under_replace_one_matches_direct_integration(sigma, q):
    exact = _subsampled_replace_one_epsilon(sigma, q, 1e-5)
    pld = dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=1, delta=1e-5)
    assert exact - 1e-9 <= pld <= exact + 2e-3


@pytest.mark.parametrize("sigma, q, steps", [(1.5, 0.04, 2250), (1.0, 0.064, 1000), (2.0, 0.25, 20)])
def test_add_remove_agrees_with_opacus_prv(sigma, q, steps):
    """Cross-check where Opacus allows it (add/remove only): two PLD-type accountants agree within Opacus'
    stated PRV error of 0.01, and Opacus' RDP is an upper bound of both."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    ours = dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5, relation="add_remove")
    prv, rdp = PRVAccountant(), RDPAccountant()
    for acc in (prv, rdp):
        acc.history = [(sigma, q, steps)]
    assert ours == pytest.approx(prv.get_epsilon(delta=1e-5), abs=0.02)
    assert ours <= rdp.get_epsilon(delta=1e-5)


def test_opacus_golden_number_is_the_add_remove_rdp_bound():
    # Opacus' own test value (σ = 1.5, q = 0.04, 2250 steps, δ = 1e-5 → ε = 7.3291 by RDP) bounds the PLD's.
    assert dp_epsilon(noise_multiplier=1.5, sample_rate=0.04, steps=2250, delta=1e-5, relation="add_remove") < 7.3291


@pytest.mark.parametrize("sigma, q, steps", [(1.0, 0.064, 1000), (8.75, 0.064, 1000), (2.0, 0.25, 20)])
def test_replace_one_costs_more_than_add_remove(sigma, q, steps):
    """A replacement moves a record's contribution twice as far as an addition: the old statement of a
    DP-AggZO run (σ = 8.75 for ε = 0.95 by RDP under add/remove, q = 0.064, T = 1000) is ε ≈ 1.8 under
    replace-one, the relation its public N implies."""
    add = dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5, relation="add_remove")
    rep = dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5, relation="replace_one")
    assert rep > add * 1.5


@pytest.mark.parametrize("epsilon, q, steps", [(0.5, 0.064, 1000), (2.0, 0.064, 1000), (6.0, 0.25, 20),
                                               (1.0, 1.0, 10)])
def test_noise_multiplier_gives_back_the_target_epsilon(epsilon, q, steps):
    sigma = noise_multiplier(epsilon=epsilon, delta=1e-5, sample_rate=q, steps=steps)
    achieved = dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5)
    assert epsilon * (1 - 1e-3) <= achieved <= epsilon
    slightly_less = dp_epsilon(noise_multiplier=sigma * (1 - 1e-3), sample_rate=q, steps=steps, delta=1e-5)
    assert slightly_less > epsilon  # so σ is within 1e-3 of the smallest σ that meets the target


def test_more_noise_costs_less_epsilon():
    eps = [dp_epsilon(noise_multiplier=s, sample_rate=0.05, steps=500, delta=1e-5) for s in (0.7, 1.0, 2.0, 4.0)]
    assert eps == sorted(eps, reverse=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_rate": 0.0}, "sample_rate"),
    ({"sample_rate": 1.5}, "sample_rate"),
    ({"steps": 0}, "steps"),
    ({"delta": 0.0}, "delta"),
    ({"noise_multiplier": 0.0}, "noise_multiplier"),
    ({"relation": "swap"}, "relation"),
])
def test_invalid_arguments_name_the_value(kwargs, match):
    args = {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 10, "delta": 1e-5, **kwargs}
    with pytest.raises(ValueError, match=match):
        dp_epsilon(**args)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.inf])
def test_impossible_targets_are_refused(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        noise_multiplier(epsilon=epsilon, delta=1e-5, sample_rate=0.1, steps=10)
