"""(ε, δ)-DP accounting of the DP baselines with Google's ``dp-accounting`` (privacy loss distributions).

A DP baseline run is T compositions of one Poisson-subsampled Gaussian release: each step samples every pool
record independently with probability q, sums the sampled records' clipped contributions (each of L2 norm at
most Δ) and adds Gaussian noise of standard deviation σ·Δ per coordinate.

**The neighbouring relation is replace-one.** The pool size N is public (it is in the run's config, the shape of
the membership matrix and the normaliser qN of every release), and under add/remove-one an exact public N rules
out any finite ε. Replacing one record by another moves its contribution from v to v' with ‖v − v'‖ ≤ 2Δ; with
Poisson sampling the worst pair of output distributions is (1 − q)N(0, σ²Δ²) + qN(−Δ, σ²Δ²) against
(1 − q)N(0, σ²Δ²) + qN(+Δ, σ²Δ²) — ``dp_accounting``'s ``REPLACE_ONE`` relation for ``PoissonSampledDpEvent``
(at q = 1 it is the Gaussian mechanism with sensitivity 2Δ). The privacy loss distribution is computed by the
connect-the-dots method with pessimistic rounding, so the ε it returns is an upper bound (Doroshenko, Ghazi,
Kamath, Kumar & Manurangsi, PETS 2022).

The releases use a discrete Gaussian on a grid of 2⁻⁴⁰·Δ (:mod:`paczero.privacy.discrete_gaussian`), not a
floating-point one. Its privacy loss at every grid point is the continuous Gaussian's (the normalising constants
cancel), and its hockey-stick divergence is the continuous one's sampled at the grid: a trapezoidal sum of a
Gaussian-smooth function with one kink, whose error relative to the integral is of order (grid/σΔ)² ≤ 1e-20
(Canonne, Kamath & Steinke 2020 compare the two in §5). The continuous PLD is therefore the discrete mechanism's
accounting up to that term.

Functions are pure and memoised: a calibration composes T steps a few dozen times (about a second each).
"""

from __future__ import annotations

import math
from functools import lru_cache

RELATIONS = ("replace_one", "add_remove")
RELATION = "replace_one"
"""The relation every DP run of paczero is accounted under (its public N allows no other)."""
RELATION_TEXT = {"replace_one": "replace-one (the pool size N is public)",
                 "add_remove": "add/remove-one"}


def _check(*, sample_rate: float, steps: int, delta: float, relation: str) -> None:
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate={sample_rate!r} is invalid; expected 0 < q <= 1")
    if not steps >= 1:
        raise ValueError(f"steps={steps!r} is invalid; expected >= 1")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta!r} is invalid; expected 0 < delta < 1")
    if relation not in RELATIONS:
        raise ValueError(f"relation={relation!r} is unknown; expected one of {', '.join(RELATIONS)}")


def _event(noise_multiplier: float, sample_rate: float, steps: int):
    import dp_accounting

    step = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sample_rate < 1.0:
        step = dp_accounting.PoissonSampledDpEvent(sample_rate, step)
    return dp_accounting.SelfComposedDpEvent(step, steps)


def _accountant(relation: str):
    import dp_accounting
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant

    rel = dp_accounting.NeighboringRelation
    return PLDAccountant(rel.REPLACE_ONE if relation == "replace_one" else rel.ADD_OR_REMOVE_ONE)


@lru_cache(maxsize=512)
def dp_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
               relation: str = RELATION) -> float:
    """ε at ``delta`` after ``steps`` Poisson-subsampled Gaussian releases of noise multiplier σ (std σ·Δ)."""
    _check(sample_rate=sample_rate, steps=steps, delta=delta, relation=relation)
    if not noise_multiplier > 0.0:
        raise ValueError(f"noise_multiplier={noise_multiplier!r} is invalid; expected > 0")
    return float(_accountant(relation).compose(_event(noise_multiplier, sample_rate, steps)).get_epsilon(delta))


@lru_cache(maxsize=256)
def noise_multiplier(*, epsilon: float, delta: float, sample_rate: float, steps: int,
                     relation: str = RELATION) -> float:
    """A σ whose ``steps`` releases cost at most ``epsilon`` at ``delta``, within ~1e-4 relative of the smallest.

    ``dp_accounting``'s calibration (Brent's method on ε(σ) − target), then moved up until ε(σ) ≤ target holds
    exactly, so the returned σ is always on the safe side.
    """
    _check(sample_rate=sample_rate, steps=steps, delta=delta, relation=relation)
    if not (epsilon > 0.0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon={epsilon!r} is invalid; expected a finite DP epsilon > 0")
    from dp_accounting.mechanism_calibration import calibrate_dp_mechanism

    sigma = float(calibrate_dp_mechanism(lambda: _accountant(relation),
                                         lambda s: _event(s, sample_rate, steps), epsilon, delta))
    sigma = max(sigma, 1e-6)
    while dp_epsilon(noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=delta,
                     relation=relation) > epsilon:
        sigma *= 1.0 + 1e-4
    return sigma
