"""The binary-input binary-output channel of a PACZero-MI release: the bit Y = sign(s_J* + σξ).

PACZero-MI publishes one bit per noisy direction: the secret subset's sign s ∈ {+1, −1}, flipped with probability
``flip`` (for Gaussian noise, flip = Φ(−1/σ)). With P(s = +1) = q, the adversary's channel is a binary symmetric
channel and

    I(q, flip) = H_b(q(1 − flip) + (1 − q)·flip) − H_b(flip)  nats.

By data processing it never exceeds the binary-input Gaussian channel's I_q(σ) (:mod:`paczero.privacy.channel`),
which also counts what the real value s + σξ would tell, so at the same budget β a smaller σ — a larger share of
releases carrying the true sign — is allowed. :func:`flip_for_mi` calibrates the flip probability exactly on this
channel, on the conservative side.

The difference of two entropies cancels catastrophically for small β; it is evaluated instead as
q·KL(a₊ ‖ r) + (1 − q)·KL(a₋ ‖ r) with r = P(Y = +1), a₊ = 1 − flip and a₋ = flip, and each Bernoulli KL as
r·g(u) + (1 − r)·g(v), u = (a − r)/r, v = −(a − r)/(1 − r), g(u) = (1 + u)ln(1 + u) − u ≥ 0 (its first-order
terms cancel exactly since r·u + (1 − r)·v = 0), with g's power series near 0: within ~1e-14 relative of a 60-digit mpmath evaluation for every q and flip.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

from paczero.privacy.channel import binary_entropy

_SERIES_RADIUS = 0.1
# g(u) = Σ_{k≥2} (−u)^k / (k(k − 1)); 24 terms are exact to double precision for |u| < 0.1.
_SERIES = np.array([0.0, 0.0] + [(-1.0) ** k / (k * (k - 1)) for k in range(2, 26)])
FLIP_GRID = 2.0**64
"""Flip probabilities are multiples of 2⁻⁶⁴, so that a 64-bit uniform word realises them exactly."""
# Below this budget a release is a fair coin (flip = 1/2, zero nats): the flip's distance from 1/2 would be
# within a few ulps of 1/2 and the calibration could no longer resolve β.
_MIN_BETA = 1e-15


def _g(u: float) -> float:
    """(1 + u)·ln(1 + u) − u for u ≥ −1, accurate near 0."""
    if abs(u) < _SERIES_RADIUS:
        return float(np.polynomial.polynomial.polyval(u, _SERIES))
    if u == -1.0:
        return 1.0
    return (1.0 + u) * math.log1p(u) - u


def _kl(a_minus_r: float, r: float, one_minus_r: float) -> float:
    """KL(Bern(r + δ) ‖ Bern(r)) in nats for δ = ``a_minus_r``."""
    return r * _g(a_minus_r / r) + one_minus_r * _g(-a_minus_r / one_minus_r)


def _check(q: float, flip: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q!r} is invalid; expected a probability in [0, 1]")
    if not 0.0 <= flip <= 0.5:
        raise ValueError(f"flip={flip!r} is invalid; expected a flip probability in [0, 1/2]")


def bsc_mi(*, q: float, flip: float) -> float:
    """I(S; Y) in nats for S = ±1 with P(S = +1) = q sent through a binary symmetric channel with crossover ``flip``.

    Equal to H_b(q(1 − flip) + (1 − q)flip) − H_b(flip); 0 for q ∈ {0, 1} or flip = 1/2, H_b(q) for flip = 0.
    """
    _check(q, flip)
    if q in (0.0, 1.0) or flip == 0.5:
        return 0.0
    if flip == 0.0:
        return binary_entropy(q)
    r = q * (1.0 - flip) + (1.0 - q) * flip  # P(Y = +1), a sum of positive terms (no cancellation)
    one_minus_r = q * flip + (1.0 - q) * (1.0 - flip)
    d = 1.0 - 2.0 * flip  # exact for flip ≥ 1/4 (Sterbenz), where it is small
    return q * _kl((1.0 - q) * d, r, one_minus_r) + (1.0 - q) * _kl(-q * d, r, one_minus_r)


def on_grid(flip: float) -> float:
    """The smallest multiple of 2⁻⁶⁴ that is ≥ ``flip`` (exact: scaling by 2⁶⁴ and ceil are exact in floats)."""
    return math.ceil(flip * FLIP_GRID) / FLIP_GRID


def flip_for_mi(*, q: float, beta: float, rtol: float = 1e-6) -> float:
    """The flip probability, a multiple of 2⁻⁶⁴, with β(1 − rtol) ≤ I(q, flip) ≤ β (the conservative side).

    I(q, ·) decreases from H_b(q) at 0 to 0 at 1/2. A bisection on the distance from 1/2, d = 1/2 − flip, in
    log scale (I ≈ 2q(1 − q)(2d)² for small d) keeps an end ``hi`` with I(hi) ≤ β at all times and returns it,
    rounded up onto the 2⁻⁶⁴ grid (which can only lower I). For β below 1e-15 the release is a fair coin
    (flip = 1/2, I = 0).
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q={q!r} is invalid; expected a probability strictly between 0 and 1 "
                         "(q ∈ {0, 1} is a deterministic bit that needs no noise)")
    entropy = binary_entropy(q)
    if not 0.0 < beta < entropy:
        raise ValueError(f"beta={beta!r} is invalid for q={q!r}; expected 0 < beta < H_b(q) = {entropy!r} nats")
    if not 0.0 < rtol <= 0.1:
        raise ValueError(f"rtol={rtol!r} is invalid; expected 0 < rtol <= 0.1")
    if beta < _MIN_BETA:
        return 0.5

    def mi(gap: float) -> float:
        return bsc_mi(q=q, flip=on_grid(0.5 - gap))

    gap_hi = min(0.25, 0.5 * math.sqrt(beta / (2.0 * q * (1.0 - q))))  # I(gap_hi) ≤ β is the usual case
    while mi(gap_hi) > beta:
        gap_hi /= 2.0
    gap_lo = 2.0 * gap_hi  # a gap with I > β (at gap 1/2, flip 0: I = H_b(q) > β)
    while gap_lo < 0.5 and mi(gap_lo) <= beta:
        gap_hi, gap_lo = gap_lo, min(2.0 * gap_lo, 0.5)
    mi_hi = mi(gap_hi)
    for _ in range(200):
        if mi_hi >= beta * (1.0 - rtol):
            break
        mid = math.sqrt(gap_lo * gap_hi)
        if not gap_hi < mid < gap_lo:  # the bracket is down to adjacent floats
            break
        mi_mid = mi(mid)
        if mi_mid > beta:
            gap_lo = mid
        else:
            gap_hi, mi_hi = mid, mi_mid
    return on_grid(0.5 - gap_hi)


def flip_of_sigma(sigma: float) -> float:
    """Φ(−1/σ) rounded up onto the 2⁻⁶⁴ grid: the flip probability of sign(s + σξ) for Gaussian ξ (never below)."""
    if not sigma > 0.0:
        raise ValueError(f"sigma={sigma!r} is invalid; expected a noise scale > 0")
    return min(on_grid(float(ndtr(-1.0 / sigma))), 0.5)


def sigma_of_flip(flip: float) -> float:
    """The Gaussian noise scale σ with Φ(−1/σ) = ``flip`` (inf for a fair coin, 0 for no flips)."""
    _check(0.5, flip)
    if flip == 0.5:
        return math.inf
    if flip == 0.0:
        return 0.0
    return float(-1.0 / ndtri(flip))
