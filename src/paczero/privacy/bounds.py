"""From an MI budget to a membership-inference bound and a matched DP ε (paczero-notes §6.2–6.3).

With prior 1/2, any membership attacker's success p satisfies KL(Bern(p) ‖ Bern(1/2)) = ln 2 − H_b(p) ≤ I
(PAC Privacy, Xiao & Devadas 2023), so p ≤ p*(I). ε-DP gives p ≤ e^ε/(1 + e^ε). Both are logistic in a
half log-odds z = logit(p)/2, in which the divergence is cancellation-free:

    D(z) = ln 2 − H_b(expit(2z)) = z·tanh z − ln cosh z,

so p*(I) = expit(2z) with D(z) = I, and the DP ε with the same posterior bound is 2z.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.special import expit, logit

_LN2 = math.log(2.0)
VACUOUS_BOUND = 0.999
"""A statement whose MIA posterior bound is at least this promises nothing a reader can use (an attacker may be right
about 999 records in 1000): such a budget is refused unless ``privacy.allow_vacuous`` is set (docs/privacy.md)."""
# D(40) = ln 2 − O(80·e^{−80}) rounds to ln 2, so for any I < ln 2 the root lies below it.
_Z_MAX = 40.0
_SERIES_MI = 1e-20


def _divergence(z: float) -> float:
    """D(z) = ln 2 − H_b(expit(2z)) for z ≥ 0, accurate to a few ulps for every z."""
    if z <= 1.0:
        # ln cosh z = log1p(2 sinh²(z/2)); both terms are ~z², so only one bit cancels.
        return z * math.tanh(z) - math.log1p(2.0 * math.sinh(0.5 * z) ** 2)
    # ln 2 minus the small remainder z·(1 − tanh z) + log1p(e^{−2z}).
    return _LN2 - 2.0 * z * float(expit(-2.0 * z)) - math.log1p(math.exp(-2.0 * z))


def _check_epsilon(epsilon: float) -> None:
    if not epsilon >= 0.0:
        raise ValueError(f"epsilon={epsilon!r} is invalid; expected a DP epsilon in [0, inf]")


def dp_posterior_bound(epsilon: float, delta: float = 0.0) -> float:
    """p_DP(ε, δ) = (e^ε + δ)/(1 + e^ε): the MIA success bound of (ε, δ)-DP at prior 1/2 (paczero-notes §6.3).

    From the hypothesis-testing view of DP: TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε(1 − TPR) + δ; the balanced
    accuracy (TPR + 1 − FPR)/2 is largest where both bind, FPR = (1 − δ)/(1 + e^ε). δ = 0 gives e^ε/(1 + e^ε).
    """
    _check_epsilon(epsilon)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta={delta!r} is invalid; expected 0 <= delta < 1")
    if epsilon == math.inf:
        return 1.0
    return float(expit(epsilon) + delta * expit(-epsilon))


def mi_for_dp_epsilon(epsilon: float) -> float:
    """I_match(ε) = ln 2 − H_b(e^ε/(1 + e^ε)) in nats: the MI with the same MIA bound as ε-DP (paczero-notes §6.3)."""
    _check_epsilon(epsilon)
    if epsilon == math.inf:
        return _LN2
    return _divergence(0.5 * epsilon)


def dp_epsilon_for_mi(mi: float) -> float:
    """ε(I) = logit p*(I): the DP ε whose MIA bound equals that of I nats (paczero-notes §6.3); inf for I ≥ ln 2.

    Solves D(z) = I by Brent's method on ln z, bracketed by √(2I)/2 (D(z) ≤ z²/2) and 40 (D(40) = ln 2). For
    I < 1e-20, z = √(2I) exactly in double precision, since D(z) = z²/2 − z⁴/12 + O(z⁶).
    """
    if not mi >= 0.0:
        raise ValueError(f"mi={mi!r} is invalid; expected a mutual information in nats, >= 0")
    if mi < _SERIES_MI:
        return 2.0 * math.sqrt(2.0 * mi)
    if mi >= _LN2:
        return math.inf
    log_z = brentq(lambda t: math.log(_divergence(math.exp(t))) - math.log(mi),
                   math.log(0.5 * math.sqrt(2.0 * mi)), math.log(_Z_MAX), xtol=1e-15)
    return 2.0 * math.exp(log_z)


def mia_posterior_bound(mi: float) -> float:
    """p*(I) ∈ [1/2, 1] with ln 2 − H_b(p*) = I: the exact KL inversion of paczero-notes §6.2.

    Any membership attacker at prior 1/2 succeeds with probability at most p*(I). I = 0 gives exactly 1/2 and
    I ≥ ln 2 gives 1. Tighter than Pinsker's 1/2 + √(I/2), which is vacuous for I ≥ 1/2.
    """
    return float(expit(dp_epsilon_for_mi(mi)))


def vacuous_mi_budget() -> float:
    """The smallest MI budget (nats) whose MIA bound p* reaches :data:`VACUOUS_BOUND` (0.6852 nats for 0.999)."""
    return mi_for_dp_epsilon(float(logit(VACUOUS_BOUND)))


def vacuous_dp_epsilon(delta: float) -> float:
    """The smallest ε whose (ε, δ) MIA bound (e^ε + δ)/(1 + e^ε) reaches :data:`VACUOUS_BOUND` (0 when δ alone
    does)."""
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta={delta!r} is invalid; expected 0 <= delta < 1")
    if delta >= VACUOUS_BOUND:
        return 0.0
    return max(0.0, float(logit((VACUOUS_BOUND - delta) / (1.0 - delta))))
