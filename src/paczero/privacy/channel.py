"""The binary-input Gaussian channel of a PACZero noisy release (paczero-notes §4).

S ∈ {+1, −1} with P(S = +1) = q, and the adversary sees Y = S + N(0, σ²). Its mutual information, in nats, is

    I_q(σ) = Σ_s q_s · KL(N(s, σ²) ‖ q·N(1, σ²) + (1−q)·N(−1, σ²))
           = q·K(q, σ) + (1−q)·K(1−q, σ),    K(p, σ) = −E_x[ln(p + (1−p)·e^u)],  u = −2/σ² − 2x/σ,

with x ~ N(0, 1) (the second term is the first with q ↔ 1−q and x ↔ −x). Two cancellation-free forms of it are
evaluated, one for small and one for large σ. :func:`sigma_for_mi` inverts it on the conservative side: the
returned σ never carries more than the requested β.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import xlog1py, xlogy

# E_x[f(x)] for x ~ N(0, 1) by the trapezoidal rule with step h = min(0.05, σ/4) on [−R, R]:
# * the integrands are analytic in the strip |Im x| < πσ/2 (the poles of ln(p + (1−p)e^u)), so the rule converges
#   like e^{−π²σ/h} ≤ e^{−39}, even when extreme q puts the poles in the bulk of N(0, 1);
# * their mass reaches out to x ≈ √(2|logit q|) (where q·e^u·N(x; 0, 1) stops growing), so R = 12 + that.
# Checked against scipy.integrate.quad and mpmath: ~1e-14 relative or better for σ ≥ 0.01 and q ≥ 1e-100.
_MAX_STEP = 0.05
_HALF_WIDTH = 12.0
# Below this σ the posterior after one release is certain to double precision: I_q(σ) = H_b(q) exactly
# (the deficit is about exp(−(1/σ − σ·|logit q|/2)²/2) ≤ e^{−4000} for any q ≥ 5e-324).
_SIGMA_SATURATED = 0.01
# Below this σ, I = H_b(q) − H(S | Y) with the equivocation H(S | Y) integrated directly; above it, K is evaluated
# as E_x[w − ln(1 + w)] with w = (1−p)(e^u − 1), whose terms are all ≥ 0 (equal to K since E_x[e^u] = 1 exactly;
# the quadrature reproduces that only while the peak of e^u·N(x; 0, 1) at x = −2/σ sits well inside the grid).
_SIGMA_SWITCH = 1.0
# w − ln(1 + w) = Σ_{k≥2} (−w)^k / k; 20 terms are exact to double precision for |w| < 0.1.
_SERIES_RADIUS = 0.1
_SERIES = np.array([0.0, 0.0] + [(-1.0) ** k / k for k in range(2, 22)])


def binary_entropy(q: float) -> float:
    """H_b(q) = −q ln q − (1−q) ln(1−q) in nats, with H_b(0) = H_b(1) = 0 (paczero-notes §3.7)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q!r} is invalid; expected a probability in [0, 1]")
    return float(-xlogy(q, q) - xlog1py(1.0 - q, -q))


def _nodes(*, sigma: float, log_odds: float) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoidal nodes and weights (summing to 1) for E_x over N(0, 1)."""
    step = min(_MAX_STEP, sigma / 4.0)
    n = math.ceil((_HALF_WIDTH + math.sqrt(2.0 * abs(log_odds))) / step)
    x = step * np.arange(-n, n + 1)
    w = np.exp(-0.5 * x**2)
    return x, w / w.sum()


def _excess(*, log_p: float, log_other: float, other: float, u: np.ndarray) -> np.ndarray:
    """w − ln(1 + w) ≥ 0 with w = (1−p)(e^u − 1), so that K(p, σ) = E_x[excess]; 1−p = ``other``."""
    w = other * np.expm1(u)
    excess = w - np.logaddexp(log_p, log_other + u)  # the log is ln(p + (1−p)e^u) = ln(1 + w)
    small = np.abs(w) < _SERIES_RADIUS
    excess[small] = np.polynomial.polynomial.polyval(w[small], _SERIES)
    return excess


def channel_mi(*, q: float, sigma: float) -> float:
    """I_q(σ) = I(S; S + N(0, σ²)) in nats for S = ±1 with P(S = +1) = q (paczero-notes §4).

    Equal to Σ_s q_s·KL(N(s, σ²) ‖ mixture). Edge cases: 0 for q ∈ {0, 1} (a deterministic bit) and for σ = ∞;
    H_b(q) for σ = 0. Accurate to ~1e-14 relative for σ ≥ 0.01 (see ``_nodes``), and numerically nonincreasing
    in σ; for σ < 0.01 it returns H_b(q), which I_q(σ) equals to double precision.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q!r} is invalid; expected a probability in [0, 1]")
    if not sigma >= 0.0:
        raise ValueError(f"sigma={sigma!r} is invalid; expected a noise scale in [0, inf]")
    if q in (0.0, 1.0) or sigma == math.inf:
        return 0.0
    if sigma < _SIGMA_SATURATED:
        return binary_entropy(q)
    log_q, log_1mq = math.log(q), math.log1p(-q)
    x, weights = _nodes(sigma=sigma, log_odds=log_q - log_1mq)
    u = -2.0 / sigma**2 - 2.0 * x / sigma  # ln N(y; −s, σ²)/N(y; s, σ²) at y = s + σx, for s = +1 (and −1, x ↔ −x)
    if sigma < _SIGMA_SWITCH:
        # H(S | Y) = Σ_s q_s·E_x[−ln P(S = s | Y)], and −ln P(S = s | y) = softplus(ln(q_{−s}/q_s) + u).
        equivocation = (q * (weights @ np.logaddexp(0.0, u + log_1mq - log_q))
                        + (1.0 - q) * (weights @ np.logaddexp(0.0, u + log_q - log_1mq)))
        return binary_entropy(q) - float(equivocation)
    return float(q * (weights @ _excess(log_p=log_q, log_other=log_1mq, other=1.0 - q, u=u))
                 + (1.0 - q) * (weights @ _excess(log_p=log_1mq, log_other=log_q, other=q, u=u)))


def sigma_for_mi(*, q: float, beta: float, rtol: float = 1e-6) -> float:
    """The noise σ with β(1 − rtol) ≤ I_q(σ) ≤ β: the exact calibration of paczero-notes §4, on the safe side.

    Bisection on ln σ that keeps an upper end ``hi`` with I_q(hi) ≤ β at all times and returns it, so the result
    never carries more than β (the official code's absolute tolerance of 1e-6 overspends up to 10× for β ≲ 1e-5,
    paczero-notes §4). The start is σ₀ = √(2q(1−q)/β), from I_q(σ) ≤ 2q(1−q)/σ² (I-MMSE: I = ½∫mmse, mmse ≤ Var S).
    Since I_q(σ)·σ² is nondecreasing in σ (I is concave in the SNR 1/σ²), once ln(hi/lo) ≤ rtol/4 with
    I_q(lo) > β we have I_q(hi) ≥ β·e^{−rtol/2} ≥ β(1 − rtol), so at most ~log2(4·ln(hi/lo)/rtol) steps are needed.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q={q!r} is invalid; expected a probability strictly between 0 and 1 "
                         "(q ∈ {0, 1} is a deterministic bit that needs no noise)")
    entropy = binary_entropy(q)
    if not 0.0 < beta < entropy:
        raise ValueError(f"beta={beta!r} is invalid for q={q!r}; expected 0 < beta < H_b(q) = {entropy!r} nats")
    if not 0.0 < rtol <= 0.1:
        raise ValueError(f"rtol={rtol!r} is invalid; expected 0 < rtol <= 0.1")
    hi = math.sqrt(2.0 * q * (1.0 - q) / beta)
    mi_hi = channel_mi(q=q, sigma=hi)
    while mi_hi > beta:  # only rounding can put σ₀ on the wrong side
        hi *= 2.0
        mi_hi = channel_mi(q=q, sigma=hi)
    lo = hi / 2.0
    while channel_mi(q=q, sigma=lo) <= beta:  # ends: I_q(σ) = H_b(q) > β once σ < _SIGMA_SATURATED
        lo /= 2.0
    while math.log(hi / lo) > rtol / 4.0 and mi_hi < beta * (1.0 - rtol):
        mid = math.sqrt(lo * hi)
        mi_mid = channel_mi(q=q, sigma=mid)
        if mi_mid > beta:
            lo = mid
        else:
            hi, mi_hi = mid, mi_mid
    return hi
